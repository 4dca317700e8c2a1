//! The `groupcached` binary: the command lives in the library
//! (`src/command.rs`); here only the allocator is chosen, since a library
//! must not choose one for the programs that embed it.

use std::process::ExitCode;

/// mimalloc instead of glibc malloc: a full cache takes less RSS per cached
/// byte (glibc leaves the holes of per-request buffers between cached
/// values) and remote hits cost fewer instructions; BENCHMARKS.md has the
/// figures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    groupcached::command_main()
}
