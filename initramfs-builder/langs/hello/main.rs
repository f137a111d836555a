// Image-build check: must print "hello, world".
use std::collections::HashMap;

fn main() {
    let mut m = HashMap::new();
    m.insert("greeting", "hello, world");
    println!("{}", m["greeting"]);
}
