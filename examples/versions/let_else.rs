// Needs Rust 1.65 or later: let-else. Rust 1.63 refuses it at compile
// time.
fn main() {
    let Some(n) = "41".parse::<i32>().ok() else {
        return;
    };
    println!("{}", n + 1);
}
