//! An image as the libraries want it, and results back: up to the device once as bytes, an
//! OpenCV `Mat` for the host warp and the drawings, tensors back to the host in one copy.

use opencv::core::{Mat, Scalar, CV_8UC3};
use opencv::prelude::*;
use proposals::RgbImage;
use tch::{Device, Kind, Tensor};

/// A `[n, classes]` tensor as rows on the host (one copy back).
pub fn rows(scores: &Tensor) -> Vec<Vec<f32>> {
    let classes = scores.size()[1] as usize;
    host_values(scores)
        .chunks(classes)
        .map(<[f32]>::to_vec)
        .collect()
}

/// Every value of a tensor on any device, as f32 on the host in row-major order (one copy).
pub fn host_values(t: &Tensor) -> Vec<f32> {
    let t = t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
    Vec::<f32>::try_from(t.flatten(0, -1)).expect("a float tensor")
}

/// `t` in pinned (page-locked) host memory when `device` is a GPU, so that its upload with
/// `non_blocking` is asynchronous and the host goes on working; as it is otherwise.
pub fn pinned(t: Tensor, device: Device) -> Tensor {
    match device {
        Device::Cuda(_) => t.pin_memory(device),
        _ => t,
    }
}

/// An image on the device: `[1, 3, H, W]` f32 (0..255), uploaded once as bytes.
pub fn upload(img: &RgbImage, device: Device) -> Tensor {
    let (h, w, _) = img.dim();
    let host =
        Tensor::from_slice(img.as_slice().expect("standard layout")).view([h as i64, w as i64, 3]);
    pinned(host, device)
        .to_device_(device, Kind::Uint8, true, false)
        .permute([2, 0, 1])
        .unsqueeze(0)
        .to_kind(Kind::Float)
}

/// An OpenCV copy of `img`, channels in RGB order.
pub fn rgb_mat(img: &RgbImage) -> opencv::Result<Mat> {
    let (h, w, _) = img.dim();
    let mut mat = Mat::new_rows_cols_with_default(h as i32, w as i32, CV_8UC3, Scalar::all(0.0))?;
    mat.data_bytes_mut()?
        .copy_from_slice(img.as_slice().expect("standard layout"));
    Ok(mat)
}
