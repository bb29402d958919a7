# example eclass
hello_src_install() { default; }
