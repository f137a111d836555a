public class Greet {
    static String greet(String who) {
        return "hello, " + who + " (from Greet.java)";
    }
}
