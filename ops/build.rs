// refinery embeds migrations/ at compile time: rebuild when a file there changes or is added.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
