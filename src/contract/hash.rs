//! The one stable hash of the runner: 64-bit FNV-1a over parts, each followed by `0xff`.
//!
//! Job names, sidecar names, Event names and run ids are derived from it, and must come out the
//! same after an upgrade of the runner mid-run, which std's `DefaultHasher` does not promise.

/// Hashes `parts` in order; `0xff` never occurs in UTF-8, so ("ab", "c") and ("a", "bc")
/// hash differently.
pub fn fnv1a64(parts: &[&str]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET_BASIS;
    for part in parts {
        for byte in part.bytes().chain([0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_values() {
        // Published FNV-1a 64 test vectors, for the bare algorithm without our separator.
        fn bare(bytes: &[u8]) -> u64 {
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
            for byte in bytes {
                hash ^= u64::from(*byte);
                hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            }
            hash
        }
        assert_eq!(bare(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(bare(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(bare(b"foobar"), 0x8594_4171_f739_67e8);
        // One part is the bare algorithm plus the separator.
        let mut with_separator = bare(b"foobar") ^ 0xff;
        with_separator = with_separator.wrapping_mul(0x0000_0100_0000_01b3);
        assert_eq!(fnv1a64(&["foobar"]), with_separator);
        assert_ne!(fnv1a64(&["ab", "c"]), fnv1a64(&["a", "bc"]));
    }
}
