// New migration files must rebuild the binary that embeds them (sqlx::migrate!).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
