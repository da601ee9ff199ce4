//! Every decoder of an on-disk structure (log record, write batch, data block, index, footer,
//! bloom filter, manifest) fed random bytes returns an error or a value, and never panics.

use proptest::prelude::*;
use sabot_storage::decoders;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), key in prop::collection::vec(any::<u8>(), 0..20)) {
        let _ = decoders::write_batch(&bytes);
        let _ = decoders::log_records(&bytes);
        let _ = decoders::data_block(&bytes, &key);
        let _ = decoders::table_index(&bytes);
        let _ = decoders::table_footer(&bytes);
        let _ = decoders::bloom_filter(&bytes, &key);
        let _ = decoders::manifest(&bytes);
    }

    #[test]
    fn blocks_with_a_valid_checksum_but_random_contents_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), key in prop::collection::vec(any::<u8>(), 0..20)) {
        let mut stored = bytes.clone();
        stored.extend_from_slice(&crc32c::crc32c(&bytes).to_le_bytes());
        let _ = decoders::data_block(&stored, &key);
        let _ = decoders::manifest(&stored);
        // A raw block: restart points and prefix-shared keys from random bytes.
        let mut raw = vec![0u8];
        raw.extend_from_slice(&bytes);
        raw.extend_from_slice(&crc32c::crc32c(&raw).to_le_bytes());
        let _ = decoders::data_block(&raw, &key);
    }
}
