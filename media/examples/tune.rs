//! Encoder quality on a synthetic game-like frame (grid lines, squares).
use media::h264::{Decoder, Encoder, EncoderConfig};
use media::{ssim, Frame};

fn main() {
    let mut f = Frame::new(640, 360);
    f.fill([30, 130, 128]);
    let grid = std::env::var("NOGRID").is_err();
    for i in 0..=64u32 {
        if !grid {
            break;
        }
        f.fill_rect(32 + i * 9, 27, 1, 324, [45, 132, 126]);
    }
    for j in 0..=36u32 {
        if !grid {
            break;
        }
        f.fill_rect(32, 27 + j * 9, 576, 1, [45, 132, 126]);
    }
    for k in 0..20u32 {
        f.fill_rect(
            33 + (k * 7 % 64) * 9,
            28 + (k * 5 % 36) * 9,
            8,
            8,
            [150, 60, 80],
        );
    }
    let mut enc = Encoder::new(EncoderConfig::default()).expect("enc");
    let mut dec = Decoder::new().expect("dec");
    for n in 0..5 {
        let au = enc.encode(&f).expect("encode");
        let d = dec.decode(&au).expect("decode").expect("pic");
        let mut maxd = 0i32;
        let mut sum = 0i64;
        let mut hist = [0u32; 8];
        for (a, b) in f.y.iter().zip(&d.y) {
            let x = (*a as i32 - *b as i32).abs();
            maxd = maxd.max(x);
            sum += *a as i64 - *b as i64;
            hist[(x as usize).min(7)] += 1;
        }
        println!(
            "frame {n} bytes {} ssim {:.5} maxdiff {maxd} meandiff {:.3} hist {hist:?}",
            au.len(),
            ssim(&f, &d),
            sum as f64 / f.y.len() as f64
        );
    }
}
