//! Request ids: ULIDs (48-bit Unix milliseconds + 80 random bits, Crockford base32), unique per
//! acquire attempt and sortable by creation time, which makes server logs easy to read.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new ULID, e.g. `01JDQ3M4ZK8Y6V2W3X4Y5Z6A7B`.
pub(crate) fn new_request_id() -> String {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64) & ((1 << 48) - 1);
    let random: u128 = rand::thread_rng().gen::<u128>() & ((1 << 80) - 1);
    let value: u128 = ((ms as u128) << 80) | random;
    // 26 characters of 5 bits each cover 130 bits; the top two are always zero.
    (0..26).rev().map(|i| ALPHABET[((value >> (i * 5)) & 31) as usize] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_26_crockford_characters_unique_and_time_ordered() {
        let a = new_request_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let ids: Vec<String> = (0..1000).map(|_| new_request_id()).collect();
        assert_eq!(a.len(), 26);
        assert!(a.bytes().all(|b| ALPHABET.contains(&b)), "{a}");
        assert!(ids.iter().all(|id| id[..10] > a[..10]), "the time prefix grows");
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
    }
}
