//! How a big room's membership is split for fan-out: every member of a room also sits
//! in one of K shards by a hash of its connection id, so K workers can each read and push
//! to their own part of the room. K follows the room's size ([`shard_count`]); because a
//! shard is a range of the hash space, K can change from one message to the next without
//! moving a single row.

use sha2::{Digest, Sha256};

/// Members per shard a fan-out job aims at: one worker pushes to about this many. At
/// the 20-odd ms a push takes on AWS and [`crate::delivery::FANOUT_CONCURRENCY`] in
/// flight, 500 pushes take about 160 ms (docs/scale.md).
pub const SHARD_SIZE: usize = 500;

/// One part of a room: the members whose [`shard_hash`] falls in the `index`-th of
/// `of` equal ranges of the 32-bit hash space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// Which range, from 0.
    pub index: u32,
    /// How many ranges the room is split into (K).
    pub of: u32,
}

impl Shard {
    /// The lowest and highest hash in the shard, both included.
    pub fn hash_range(self) -> (u32, u32) {
        let of = u64::from(self.of.max(1));
        let index = u64::from(self.index.min(self.of.saturating_sub(1)));
        let bound = |i: u64| (i << 32) / of;
        // Both fit: the bounds are at most 2^32 and the last is taken one below it.
        let low = u32::try_from(bound(index)).unwrap_or(u32::MAX);
        let high = u32::try_from(bound(index + 1) - 1).unwrap_or(u32::MAX);
        (low, high)
    }

    /// Whether a connection's member row belongs to this shard.
    pub fn contains(self, connection_id: &str) -> bool {
        let (low, high) = self.hash_range();
        (low..=high).contains(&shard_hash(connection_id))
    }

    /// Every shard of a room split `of` ways.
    pub fn all(of: u32) -> impl Iterator<Item = Shard> {
        (0..of.max(1)).map(move |index| Shard {
            index,
            of: of.max(1),
        })
    }
}

/// How many shards a room of `members` is split into: one per `shard_size` members
/// ([`SHARD_SIZE`] by default).
pub fn shard_count(members: usize, shard_size: usize) -> u32 {
    u32::try_from(members.div_ceil(shard_size.max(1)).max(1)).unwrap_or(u32::MAX)
}

/// Where a connection falls in every room's hash space: the first four bytes of the
/// SHA-256 of its id. API Gateway's ids are not uniform in their first characters, so
/// the id itself would shard unevenly.
pub fn shard_hash(connection_id: &str) -> u32 {
    let digest = Sha256::digest(connection_id.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shards_of_a_room_cover_the_hash_space_once() {
        for of in [1, 2, 3, 7, 20, 200] {
            let ranges: Vec<_> = Shard::all(of).map(Shard::hash_range).collect();
            assert_eq!(ranges[0].0, 0);
            assert_eq!(ranges[ranges.len() - 1].1, u32::MAX);
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].1 + 1, pair[1].0, "{of} shards: gap or overlap");
            }
        }
    }

    #[test]
    fn every_member_is_in_exactly_one_shard_and_shards_are_about_even() {
        let ids: Vec<String> = (0..10_000).map(|i| format!("conn{i:05}=")).collect();
        let of = shard_count(ids.len(), SHARD_SIZE);
        assert_eq!(of, 20);
        let mut sizes = vec![0usize; of as usize];
        for id in &ids {
            let holders: Vec<Shard> = Shard::all(of).filter(|s| s.contains(id)).collect();
            assert_eq!(holders.len(), 1, "{id}");
            sizes[holders[0].index as usize] += 1;
        }
        assert!(sizes.iter().all(|&n| (350..=650).contains(&n)), "{sizes:?}");
    }

    #[test]
    fn shard_count_grows_with_the_room() {
        assert_eq!(shard_count(0, SHARD_SIZE), 1);
        assert_eq!(shard_count(500, SHARD_SIZE), 1);
        assert_eq!(shard_count(501, SHARD_SIZE), 2);
        assert_eq!(shard_count(100_000, SHARD_SIZE), 200);
    }
}
