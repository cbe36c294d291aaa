fn main() {
    println!("{}", emu_admin::openapi::document().to_pretty_json().unwrap());
}
