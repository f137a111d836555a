pub fn greet(who: &str) -> String {
    format!("hello, {} (from greet.rs)", who)
}
