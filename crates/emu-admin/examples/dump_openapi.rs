fn main() {
    println!("{}", serde_json::to_string_pretty(&emu_admin::openapi::document()).unwrap());
}
