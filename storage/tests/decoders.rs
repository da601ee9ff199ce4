//! Every decoder of an on-disk structure (log record, write batch, data block, index, footer,
//! bloom filter) fed random bytes returns an error or a value, and never panics.

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
    }

    #[test]
    fn blocks_with_a_valid_checksum_but_random_contents_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), key in prop::collection::vec(any::<u8>(), 0..20)) {
        let mut stored = bytes.clone();
        stored.extend_from_slice(&crc32c::crc32c(&bytes).to_le_bytes());
        let _ = decoders::data_block(&stored, &key);
    }
}
