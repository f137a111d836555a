// Image-build check: must print "hello, world".
import java.util.*;

public class Main {
    public static void main(String[] args) {
        List<String> words = new ArrayList<>(List.of("hello", "world"));
        System.out.println(String.join(", ", words));
    }
}
