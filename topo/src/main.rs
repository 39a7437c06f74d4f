fn main() {
    eprintln!("topo: under construction");
}
