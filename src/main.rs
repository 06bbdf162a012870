//! `rcnn`: the command line of inception-rcnn.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
