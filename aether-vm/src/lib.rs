//! Bytecode compiler and virtual machine for `.aether` scripts. Empty until the VM issue (#3) lands.
