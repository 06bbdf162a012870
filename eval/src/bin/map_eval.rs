//! `map-eval`: the evaluator without torch or OpenCV; the same flags as `rcnn map-eval`.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "map-eval",
    version,
    about = "Mean average precision of detections: ILSVRC, VOC and COCO rules"
)]
struct Cli {
    #[command(flatten)]
    args: eval::cli::MapEvalArgs,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match eval::cli::run(&cli.args) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("error: {msg}");
            std::process::ExitCode::FAILURE
        }
    }
}
