//! `rcnn import-weights`.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use inception_rcnn::model::summary::summarize;
use inception_rcnn::model::weights::{
    config_from_metadata, infer_config, load_state_dict, read_state_dict, read_tensors,
};
use inception_rcnn::model::{Layout, Model};
use inception_rcnn::run::device;
use tch::{Kind, Tensor};

use super::{thousands, DeviceArgs};

#[derive(Args, Debug)]
pub struct ImportWeightsArgs {
    /// A GoogLeNet state dict: torchvision's `torch.save` file (.pth/.pt/.bin) or a
    /// safetensors export with the same tensor names.
    input: PathBuf,
    /// The model file to write (safetensors with metadata).
    #[arg(long, short, value_name = "FILE")]
    out: PathBuf,
    /// Input size the model will be fed [default: the input file's own, if it is one of our
    /// model files; otherwise 224].
    #[arg(long, value_parser = super::range::input_size)]
    input_size: Option<i64>,
    /// torchvision's transform_input (default: on for the torchvision layout, as torchvision
    /// sets it for its ImageNet weights; off for the paper layout).
    #[arg(long, value_name = "BOOL")]
    transform_input: Option<bool>,
    /// Drop the auxiliary classifiers even if the state dict has them.
    #[arg(long)]
    no_aux: bool,
    /// Class names, one per line, as many as the classifier has outputs.
    #[arg(long, value_name = "FILE")]
    classes: Option<PathBuf>,
    #[command(flatten)]
    device: DeviceArgs,
}

pub fn run(args: ImportWeightsArgs, threads: Option<usize>) -> anyhow::Result<()> {
    // The check below runs the network once, on the chosen device.
    let device = device::select(args.device.device, threads)?;
    // One of our own model files (safetensors with our metadata) keeps what its metadata says
    // unless a flag overrides it; tensors and metadata come from one read.
    let is_safetensors = args
        .input
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    let (tensors, own) = if is_safetensors {
        let (tensors, meta) = read_tensors(&args.input)?;
        (tensors, config_from_metadata(&args.input, &meta).ok())
    } else {
        (read_state_dict(&args.input)?, None)
    };
    let mut config = infer_config(&tensors, &args.input)?;
    if let Some((c, _)) = &own {
        config.input_size = c.input_size;
        config.transform_input = c.transform_input;
        config.mean = c.mean;
        config.std = c.std;
    } else {
        config.transform_input = config.layout == Layout::Torchvision;
    }
    if let Some(size) = args.input_size {
        config.input_size = size;
    }
    if let Some(t) = args.transform_input {
        config.transform_input = t;
    }
    config.aux_logits &= !args.no_aux;
    let classes = match &args.classes {
        Some(path) => {
            let names = eval::ClassList::read(path)?.names;
            if names.len() as i64 != config.num_classes {
                bail!(
                    "{}: {} class names, but the classifier has {} outputs",
                    path.display(),
                    names.len(),
                    config.num_classes
                );
            }
            names
        }
        None => match own {
            Some((_, names)) if names.len() as i64 == config.num_classes => names,
            // torchvision's ImageNet weights: their outputs are ILSVRC2012's classes in the
            // order of data/ilsvrc/cls_synsets_1000.tsv (WNIDs sorted), as the README says.
            _ if config.num_classes == 1000 => distinct_names(&eval::ClassList::ilsvrc1000()),
            _ => Vec::new(),
        },
    };
    let mut model = Model::new(&config, classes, device)?;
    load_state_dict(&mut model.vs, &tensors, &args.input)?;
    // A forward pass proves the weights fit together and give finite logits.
    let probe = Tensor::zeros(
        [1, 3, config.input_size, config.input_size],
        (Kind::Float, device),
    );
    let logits = tch::no_grad(|| model.net.forward_t(&probe, false).main);
    if logits.isfinite().all().int64_value(&[]) == 0 {
        bail!(
            "{}: the imported weights give non-finite logits",
            args.input.display()
        );
    }
    model.save(&args.out)?;
    let summary = summarize(&model);
    println!(
        "{} -> {}: {} layout, {} classes, width {}, input {}, transform_input {}, {} parameters{}",
        args.input.display(),
        args.out.display(),
        config.layout,
        config.num_classes,
        config.width,
        config.input_size,
        config.transform_input,
        thousands(summary.params()),
        if config.aux_logits {
            " (+ auxiliary classifiers)"
        } else {
            ""
        },
    );
    Ok(())
}

/// A list's names, each made distinct where two classes share one (ILSVRC2012 has two `crane`s,
/// the bird and the machine, and two `maillot`s) by adding its WNID: a model file's classes
/// must be distinct, or their outputs would be reported under one name.
fn distinct_names(list: &eval::ClassList) -> Vec<String> {
    let mut count: std::collections::HashMap<&str, usize> = Default::default();
    for n in &list.names {
        *count.entry(n.as_str()).or_default() += 1;
    }
    list.names
        .iter()
        .zip(&list.wnids)
        .map(|(n, w)| match count[n.as_str()] {
            1 => n.clone(),
            _ => format!("{n} ({w})"),
        })
        .collect()
}
