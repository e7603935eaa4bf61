//! The encoding of packed rollup columns (`run_slots.groups`, the call rollups' `latencies`
//! and latency pages): integers as LEB128, signed ones zigzagged first; floats as 8
//! big-endian bytes.

pub(super) fn put(out: &mut Vec<u8>, value: u64) {
    put_wide(out, value.into());
}

pub(super) fn take(bytes: &mut &[u8]) -> Option<u64> {
    Some(take_wide(bytes, 64)? as u64)
}

/// A signed 128-bit integer (sums), zigzagged.
pub(super) fn put_signed_wide(out: &mut Vec<u8>, value: i128) {
    put_wide(out, ((value << 1) ^ (value >> 127)) as u128);
}

fn put_wide(out: &mut Vec<u8>, mut value: u128) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(super) fn take_signed_wide(bytes: &mut &[u8]) -> Option<i128> {
    let z = take_wide(bytes, 128)?;
    Some(((z >> 1) as i128) ^ -((z & 1) as i128))
}

/// An unsigned integer of at most `bits` bits.
fn take_wide(bytes: &mut &[u8], bits: u32) -> Option<u128> {
    let mut value = 0u128;
    for shift in (0..bits).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u128::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

pub(super) fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

pub(super) fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

pub(super) fn put_f64(out: &mut Vec<u8>, value: f64) {
    out.extend_from_slice(&value.to_be_bytes());
}

pub(super) fn take_f64(bytes: &mut &[u8]) -> Option<f64> {
    let (raw, rest) = bytes.split_first_chunk::<8>()?;
    *bytes = rest;
    Some(f64::from_be_bytes(*raw))
}

/// `values`, each as [`put_f64`] writes it.
pub(super) fn put_floats(out: &mut Vec<u8>, values: &[f64]) {
    values.iter().for_each(|&v| put_f64(out, v));
}

/// The floats [`put_floats`] wrote, or None when `bytes` is not a whole number of them.
pub(super) fn floats(bytes: &[u8]) -> Option<impl Iterator<Item = f64> + '_> {
    let chunks = bytes.chunks_exact(8);
    chunks.remainder().is_empty().then(|| chunks.map(|b| f64::from_be_bytes(b.try_into().expect("8 bytes"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_round_trip_and_a_cut_one_is_refused() {
        let mut out = Vec::new();
        for v in [0, 1, 127, 128, u64::MAX] {
            put(&mut out, v);
        }
        for v in [0, -1, i128::MAX, i128::MIN] {
            put_signed_wide(&mut out, v);
        }
        let mut bytes = out.as_slice();
        for v in [0, 1, 127, 128, u64::MAX] {
            assert_eq!(take(&mut bytes), Some(v));
        }
        for v in [0, -1, i128::MAX, i128::MIN] {
            assert_eq!(take_signed_wide(&mut bytes), Some(v));
        }
        assert!(bytes.is_empty());
        assert_eq!(take(&mut &[0x80u8][..]), None);
        assert_eq!(take(&mut &[0xffu8; 11][..]), None, "more than 64 bits");
    }

    #[test]
    fn floats_round_trip_and_a_cut_one_is_refused() {
        let values = [0.0, -0.0, 1.5, -2.25e300, f64::MIN_POSITIVE];
        let mut out = Vec::new();
        put_floats(&mut out, &values);
        let back: Vec<f64> = floats(&out).unwrap().collect();
        assert_eq!(back.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), values.map(f64::to_bits));
        assert!(floats(&out[..out.len() - 1]).is_none());
    }
}
