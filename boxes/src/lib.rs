//! The box type and intersection-over-union under both pixel conventions: what proposals,
//! detections and ground truth are made of. Its own crate so that the proposals need not
//! depend on the evaluator.

use serde::{Deserialize, Serialize};

/// How box corners map to pixels.
///
/// ILSVRC and PASCAL VOC count pixels: a box from x1 = 10 to x2 = 19 covers ten pixel columns,
/// so widths are `x2 - x1 + 1`. COCO boxes are continuous: the same corners give width 9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelConvention {
    /// Inclusive pixel indices (ILSVRC, VOC): width = x2 - x1 + 1.
    Inclusive,
    /// Continuous coordinates (COCO): width = x2 - x1.
    Continuous,
}

impl PixelConvention {
    fn extra(self) -> f64 {
        match self {
            PixelConvention::Inclusive => 1.0,
            PixelConvention::Continuous => 0.0,
        }
    }
}

/// An axis-aligned box by its corners, in image pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    pub x1: f64,
    pub y1: f64,
    pub x2: f64,
    pub y2: f64,
}

impl BBox {
    pub fn new(x1: f64, y1: f64, x2: f64, y2: f64) -> Self {
        BBox { x1, y1, x2, y2 }
    }

    /// From COCO's `[x, y, w, h]`.
    pub fn from_xywh(x: f64, y: f64, w: f64, h: f64) -> Self {
        BBox::new(x, y, x + w, y + h)
    }

    pub fn width(&self, conv: PixelConvention) -> f64 {
        self.x2 - self.x1 + conv.extra()
    }

    pub fn height(&self, conv: PixelConvention) -> f64 {
        self.y2 - self.y1 + conv.extra()
    }

    /// Area; zero for an empty, inverted or non-finite box.
    pub fn area(&self, conv: PixelConvention) -> f64 {
        let (w, h) = (self.width(conv), self.height(conv));
        // Written so that NaN falls into the zero branch.
        if w > 0.0 && h > 0.0 && (w * h).is_finite() {
            w * h
        } else {
            0.0
        }
    }

    /// Intersection over union; zero when either box is empty or they do not overlap.
    pub fn iou(&self, other: &BBox, conv: PixelConvention) -> f64 {
        let (area_a, area_b) = (self.area(conv), other.area(conv));
        if area_a == 0.0 || area_b == 0.0 {
            return 0.0;
        }
        let inter = BBox::new(
            self.x1.max(other.x1),
            self.y1.max(other.y1),
            self.x2.min(other.x2),
            self.y2.min(other.y2),
        )
        .area(conv);
        if inter <= 0.0 {
            return 0.0;
        }
        inter / (area_a + area_b - inter)
    }

    /// This box cut to a `width` x `height` image's pixels (inclusive corners, 0 to width - 1 and
    /// height - 1); `None` when no pixel of it lies inside.
    pub fn clipped(&self, width: usize, height: usize) -> Option<BBox> {
        let (w, h) = (width as f64 - 1.0, height as f64 - 1.0);
        let b = BBox::new(
            self.x1.max(0.0),
            self.y1.max(0.0),
            self.x2.min(w),
            self.y2.min(h),
        );
        b.is_valid().then_some(b)
    }

    /// True when every coordinate is finite and the corners are ordered.
    pub fn is_valid(&self) -> bool {
        [self.x1, self.y1, self.x2, self.y2]
            .iter()
            .all(|v| v.is_finite())
            && self.x1 <= self.x2
            && self.y1 <= self.y2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INC: PixelConvention = PixelConvention::Inclusive;

    #[test]
    fn clipping_keeps_the_pixels_inside_and_drops_a_box_outside() {
        let b = BBox::new(-5.0, 10.0, 700.0, 20.0);
        assert_eq!(b.clipped(650, 417), Some(BBox::new(0.0, 10.0, 649.0, 20.0)));
        assert_eq!(BBox::new(660.0, 0.0, 700.0, 9.0).clipped(650, 417), None);
        assert_eq!(BBox::new(0.0, 0.0, 1.0, 1.0).clipped(0, 0), None);
    }
    const CONT: PixelConvention = PixelConvention::Continuous;

    #[test]
    fn widths_follow_the_convention() {
        let b = BBox::new(10.0, 20.0, 19.0, 39.0);
        assert_eq!(b.width(INC), 10.0);
        assert_eq!(b.height(INC), 20.0);
        assert_eq!(b.area(INC), 200.0);
        assert_eq!(b.width(CONT), 9.0);
        assert_eq!(b.area(CONT), 171.0);
    }

    #[test]
    fn iou_by_hand() {
        // Continuous: two 10x10 boxes overlapping in a 5x10 strip: 50 / 150.
        let a = BBox::new(0.0, 0.0, 10.0, 10.0);
        let b = BBox::new(5.0, 0.0, 15.0, 10.0);
        assert!((a.iou(&b, CONT) - 1.0 / 3.0).abs() < 1e-12);
        // Inclusive: 11x11 boxes, overlap 6x11 = 66, union 242 - 66 = 176.
        assert!((a.iou(&b, INC) - 66.0 / 176.0).abs() < 1e-12);
        assert_eq!(a.iou(&a, CONT), 1.0);
    }

    #[test]
    fn touching_boxes() {
        // Sharing the column x = 10: no overlap when continuous, one pixel column when inclusive.
        let a = BBox::new(0.0, 0.0, 10.0, 9.0);
        let b = BBox::new(10.0, 0.0, 20.0, 9.0);
        assert_eq!(a.iou(&b, CONT), 0.0);
        assert!((a.iou(&b, INC) - 10.0 / 210.0).abs() < 1e-12);
    }

    #[test]
    fn degenerate_boxes_give_zero() {
        let good = BBox::new(0.0, 0.0, 10.0, 10.0);
        let inverted = BBox::new(10.0, 10.0, 0.0, 0.0);
        let nan = BBox::new(f64::NAN, 0.0, 5.0, 5.0);
        assert_eq!(good.iou(&inverted, CONT), 0.0);
        assert_eq!(good.iou(&nan, CONT), 0.0);
        assert!(!inverted.is_valid());
        assert!(!nan.is_valid());
        assert!(good.is_valid());
    }

    #[test]
    fn from_xywh() {
        let b = BBox::from_xywh(1.0, 2.0, 3.0, 4.0);
        assert_eq!(b, BBox::new(1.0, 2.0, 4.0, 6.0));
    }
}
