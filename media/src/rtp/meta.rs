//! [`FrameMeta`]: the application's per-frame metadata (world tick, last
//! applied input, render time) and its RFC 8285 one-byte header extension
//! (profile 0xBEDE, ids 1, 2, 3).

use super::{one_byte_elements, Extension, RtpError};

/// Per-frame metadata the instance puts on every packet of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FrameMeta {
    /// World tick the frame shows (element id 1).
    pub tick: u64,
    /// The account's last applied input sequence number in that world
    /// (element id 2).
    pub input_seq: u64,
    /// When the frame was rendered, CLOCK_REALTIME ns (element id 3).
    pub rendered_ns: u64,
}

impl FrameMeta {
    /// RFC 8285 one-byte header extension profile.
    pub const PROFILE: u16 = 0xBEDE;
    /// Length of the extension data: three 9-octet elements, one padding
    /// octet.
    pub const EXT_LEN: usize = 28;

    /// The extension data (three one-byte-header elements of 8 octets).
    pub fn extension_data(&self) -> [u8; FrameMeta::EXT_LEN] {
        let mut d = [0u8; FrameMeta::EXT_LEN];
        for (i, v) in [self.tick, self.input_seq, self.rendered_ns]
            .into_iter()
            .enumerate()
        {
            let o = i * 9;
            // id i+1, L = 8 - 1.
            d[o] = ((i as u8 + 1) << 4) | 7;
            d[o + 1..o + 9].copy_from_slice(&v.to_be_bytes());
        }
        d
    }

    /// The header extension carrying this metadata.
    pub fn to_extension(&self) -> Extension {
        Extension {
            profile: FrameMeta::PROFILE,
            data: self.extension_data().to_vec(),
        }
    }

    /// The metadata in a header extension: `Ok(None)` if the profile is not
    /// 0xBEDE or one of ids 1, 2, 3 is missing; other ids are ignored.
    pub fn parse(profile: u16, data: &[u8]) -> Result<Option<FrameMeta>, RtpError> {
        if profile != FrameMeta::PROFILE {
            return Ok(None);
        }
        let mut v = [None; 3];
        for e in one_byte_elements(data) {
            let (id, d) = e?;
            if (1..=3).contains(&id) {
                let a: [u8; 8] = d
                    .try_into()
                    .map_err(|_| RtpError::MetaElement { id, len: d.len() })?;
                v[usize::from(id - 1)] = Some(u64::from_be_bytes(a));
            }
        }
        Ok(match v {
            [Some(tick), Some(input_seq), Some(rendered_ns)] => Some(FrameMeta {
                tick,
                input_seq,
                rendered_ns,
            }),
            _ => None,
        })
    }
}
