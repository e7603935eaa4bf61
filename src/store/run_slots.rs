//! The run rollups of migration 0009: written from the runs of dirty slots in the same
//! transaction as the 0006 rollups (`slots::refresh`), and read as [`RunSlot`]s.
//!
//! A slot's `groups` packs, integers as LEB128 (signed ones zigzagged) and strings as a
//! length and UTF-8: the models its usage names (a count, then each), then each of its
//! [`RunSlot`]s in turn: name, run type, is_root (0/1), status, runs, last start (µs since the
//! epoch), the latencies (a count, a format, then each as µs or as 8 little-endian bytes),
//! then the runs with usage (a count, then per run its row count and per row the model's
//! index and the input, output, total, cache-read and cache-creation tokens). Run statistics
//! use no request counts (they read back as 0). The benchmark's million runs take ~13 MB.
//! `runs` (migration 0013) is the slot's run count, so a request can be refused before any
//! of it is decoded.
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use sqlx::{PgConnection, PgPool};

use super::packed::{put, take, unzigzag, zigzag};
use crate::domain::usage::Counters;
use crate::stats::runs::{RunSlot, RunSlots};
use crate::stats::slots::Range;

/// Which rollup groups to read: the conditions run statistics can answer from them.
#[derive(Debug, Clone, Default)]
pub struct RunSlotFilter {
    pub run_type: Option<String>,
    pub error: Option<bool>,
    pub is_root: Option<bool>,
}

impl RunSlotFilter {
    fn matches(&self, slot: &RunSlot) -> bool {
        self.run_type.as_ref().is_none_or(|t| *t == slot.run_type)
            && self.error.is_none_or(|e| e == slot.is_error())
            && self.is_root.is_none_or(|r| r == slot.is_root)
    }
}

/// Write the run rollups of the slots being rebuilt (built from every run of them; the caller
/// deleted their old rows), inside the refresh's transaction.
#[tracing::instrument(level = "debug", skip_all)]
pub(super) async fn write(tx: &mut PgConnection, project: &str, runs: RunSlots) -> Result<(), sqlx::Error> {
    let rolled = runs.finish();
    let mut starts = Vec::new();
    let mut counts = Vec::new();
    let mut packed = Vec::new();
    for groups in rolled.chunk_by(|a, b| a.slot == b.slot) {
        starts.push(groups[0].slot);
        counts.push(groups.iter().map(|g| g.runs as i64).sum::<i64>());
        packed.push(encode(groups));
    }
    sqlx::query(
        "insert into run_slots (project_id, slot, runs, groups)
         select $1, * from unnest($2::timestamptz[], $3::int8[], $4::bytea[])",
    )
    .bind(project)
    .bind(starts)
    .bind(counts)
    .bind(packed)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The runs the rollups of `range` hold, whatever their group; None when a row predates
/// migration 0013's count.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn runs_at_most(db: &PgPool, project: &str, (from, to): Range) -> Result<Option<u64>, sqlx::Error> {
    let (runs, uncounted): (Option<i64>, i64) = sqlx::query_as(
        "select sum(runs)::int8, count(*) filter (where runs is null)
         from run_slots where project_id = $1 and slot >= $2 and slot < $3",
    )
    .bind(project)
    .bind(from)
    .bind(to)
    .fetch_one(db)
    .await?;
    Ok((uncounted == 0).then(|| runs.unwrap_or_default().max(0) as u64))
}

/// The runs of the rollup groups of `range` matching `filter`, counted from the groups'
/// headers without keeping their values; the count stops once it passes `above`.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn count(
    db: &PgPool,
    project: &str,
    (from, to): Range,
    filter: &RunSlotFilter,
    above: u64,
) -> Result<u64, sqlx::Error> {
    let mut rows = sqlx::query_scalar::<_, Vec<u8>>(
        "select groups from run_slots where project_id = $1 and slot >= $2 and slot < $3",
    )
    .bind(project)
    .bind(from)
    .bind(to)
    .fetch(db);
    let mut group = RunSlot::empty(DateTime::UNIX_EPOCH);
    let mut runs = 0u64;
    while let Some(packed) = rows.try_next().await? {
        runs += count_groups(&packed, filter, &mut group).ok_or_else(malformed)?;
        if runs > above {
            break;
        }
    }
    Ok(runs)
}

fn malformed() -> sqlx::Error {
    sqlx::Error::Decode("run_slots.groups is malformed".into())
}

/// Feed the rollup groups of `range` matching `filter` to `each`, as they arrive, until it
/// returns false.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn for_each(
    db: &PgPool,
    project: &str,
    (from, to): Range,
    filter: &RunSlotFilter,
    mut each: impl FnMut(&RunSlot) -> bool,
) -> Result<(), sqlx::Error> {
    let mut rows = sqlx::query_as::<_, (DateTime<Utc>, Vec<u8>)>(
        "select slot, groups from run_slots where project_id = $1 and slot >= $2 and slot < $3",
    )
    .bind(project)
    .bind(from)
    .bind(to)
    .fetch(db);
    let mut group = RunSlot::empty(DateTime::UNIX_EPOCH);
    while let Some((slot, packed)) = rows.try_next().await? {
        let mut bytes = packed.as_slice();
        group.slot = slot;
        decode_models(&mut bytes, &mut group.models).ok_or_else(malformed)?;
        while !bytes.is_empty() {
            decode_group(&mut bytes, &mut group).ok_or_else(malformed)?;
            if filter.matches(&group) && !each(&group) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The `groups` column of one slot's groups: the models their usage names (once a slot),
/// then each group.
fn encode(groups: &[RunSlot]) -> Vec<u8> {
    let mut models: Vec<&str> = Vec::new();
    let mut remapped: Vec<Vec<usize>> = Vec::with_capacity(groups.len());
    for group in groups {
        let mut indices = Vec::with_capacity(group.models.len());
        for model in &group.models {
            indices.push(models.iter().position(|m| m == model).unwrap_or_else(|| {
                models.push(model);
                models.len() - 1
            }));
        }
        remapped.push(indices);
    }
    let mut out = Vec::new();
    put(&mut out, models.len() as u64);
    for model in &models {
        put_str(&mut out, model);
    }
    for (group, slot_models) in groups.iter().zip(&remapped) {
        encode_group(group, slot_models, &mut out);
    }
    out
}

/// Append `group`, its usage naming models by their index among the slot's (`slot_models`).
fn encode_group(group: &RunSlot, slot_models: &[usize], out: &mut Vec<u8>) {
    for text in [&group.name, &group.run_type] {
        put_str(out, text);
    }
    put(out, u64::from(group.is_root));
    put_str(out, &group.status);
    put(out, group.runs);
    put(out, zigzag(group.last_start.timestamp_micros()));
    // Latencies are whole microseconds over 1000 (migration 0001's latency_ms): stored as the
    // microseconds (~3 bytes, not 8) when every one of the group reads back bit for bit.
    let micros: Option<Vec<i64>> = group.latencies_ms.iter().map(|&ms| exact_micros(ms)).collect();
    put(out, group.latencies_ms.len() as u64);
    match micros {
        Some(micros) => {
            put(out, 0);
            micros.into_iter().for_each(|us| put(out, zigzag(us)));
        }
        None => {
            put(out, 1);
            group.latencies_ms.iter().for_each(|ms| out.extend_from_slice(&ms.to_le_bytes()));
        }
    }
    put(out, group.usage_runs.len() as u64);
    let mut rows = group.usage_rows.iter();
    for &n in &group.usage_runs {
        put(out, u64::from(n));
        for (model, c) in rows.by_ref().take(n as usize) {
            put(out, slot_models[*model as usize] as u64);
            for value in [
                c.input_tokens,
                c.output_tokens,
                c.total_tokens,
                c.cache_read_input_tokens,
                c.cache_creation_input_tokens,
            ] {
                put(out, zigzag(value));
            }
        }
    }
}

/// Read the slot's models into `models`; None if malformed.
fn decode_models(bytes: &mut &[u8], models: &mut Vec<String>) -> Option<()> {
    let n = take(bytes)?;
    // Each model takes at least a byte: a larger count is malformed, not an allocation.
    models.resize_with(usize::try_from(n).ok().filter(|&m| m <= bytes.len())?, String::new);
    for model in models {
        take_str(bytes, model)?;
    }
    Some(())
}

/// The runs of one slot's groups (`packed`, its `groups` column) matching `filter`, read
/// from their headers into `group` (a buffer); None if malformed.
fn count_groups(packed: &[u8], filter: &RunSlotFilter, group: &mut RunSlot) -> Option<u64> {
    let mut bytes = packed;
    decode_models(&mut bytes, &mut group.models)?;
    let mut runs = 0u64;
    while !bytes.is_empty() {
        decode_header(&mut bytes, group)?;
        if filter.matches(group) {
            runs = runs.saturating_add(group.runs);
        }
        let latencies = take(&mut bytes)?;
        if take(&mut bytes)? == 0 {
            (0..latencies).try_for_each(|_| take(&mut bytes).map(drop))?;
        } else {
            bytes = bytes.get(usize::try_from(latencies).ok()?.checked_mul(8)?..)?;
        }
        for _ in 0..take(&mut bytes)? {
            // Each usage row: the model's index and five counters.
            (0..take(&mut bytes)?.checked_mul(6)?).try_for_each(|_| take(&mut bytes).map(drop))?;
        }
    }
    Some(runs)
}

/// Read a group's name, run type, root-ness, status, runs and last start into `group`.
fn decode_header(bytes: &mut &[u8], group: &mut RunSlot) -> Option<()> {
    take_str(bytes, &mut group.name)?;
    take_str(bytes, &mut group.run_type)?;
    group.is_root = take(bytes)? == 1;
    take_str(bytes, &mut group.status)?;
    group.runs = take(bytes)?;
    group.last_start = DateTime::from_timestamp_micros(unzigzag(take(bytes)?))?;
    Some(())
}

/// Read the next group of a slot into `group` (its buffers reused, its slot and models
/// already set); None if malformed.
fn decode_group(bytes: &mut &[u8], group: &mut RunSlot) -> Option<()> {
    decode_header(bytes, group)?;
    let latencies = usize::try_from(take(bytes)?).ok().filter(|&n| n <= bytes.len())?;
    group.latencies_ms.clear();
    if take(bytes)? == 0 {
        for _ in 0..latencies {
            group.latencies_ms.push(unzigzag(take(bytes)?) as f64 / 1000.0);
        }
    } else {
        let (raw, rest) = bytes.split_at_checked(latencies.checked_mul(8)?)?;
        *bytes = rest;
        group.latencies_ms.extend(raw.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("chunks of 8"))));
    }
    let models = group.models.len() as u64;
    group.usage_runs.clear();
    group.usage_rows.clear();
    for _ in 0..take(bytes)? {
        let n = take(bytes)?;
        group.usage_runs.push(u32::try_from(n).ok()?);
        for _ in 0..n {
            let model = take(bytes)?;
            if model >= models {
                return None;
            }
            let mut value = || take(bytes).map(unzigzag);
            let counters = Counters {
                requests: 0,
                input_tokens: value()?,
                output_tokens: value()?,
                total_tokens: value()?,
                cache_read_input_tokens: value()?,
                cache_creation_input_tokens: value()?,
            };
            group.usage_rows.push((model as u32, counters));
        }
    }
    Some(())
}

/// `ms` as whole microseconds, when `µs / 1000` gives back exactly `ms`.
fn exact_micros(ms: f64) -> Option<i64> {
    let us = (ms * 1000.0).round();
    // Below 2^53 every integer is exact, so the division is correctly rounded from it.
    (us.abs() < 9_007_199_254_740_992.0 && ((us as i64) as f64 / 1000.0).to_bits() == ms.to_bits()).then_some(us as i64)
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    put(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

fn take_str(bytes: &mut &[u8], into: &mut String) -> Option<()> {
    let len = usize::try_from(take(bytes)?).ok()?;
    let (raw, rest) = bytes.split_at_checked(len)?;
    *bytes = rest;
    into.clear();
    into.push_str(std::str::from_utf8(raw).ok()?);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, usage_runs: Vec<u32>, usage_rows: Vec<(u32, Counters)>) -> RunSlot {
        RunSlot {
            name: name.into(),
            run_type: "llm".into(),
            is_root: false,
            status: "success".into(),
            runs: 3,
            last_start: DateTime::from_timestamp_micros(-1_234_567).unwrap(),
            latencies_ms: vec![1.5, f64::MAX, 0.001],
            models: vec!["a".into(), "bé".into()],
            usage_runs,
            usage_rows,
            ..RunSlot::empty(DateTime::UNIX_EPOCH)
        }
    }

    #[test]
    fn counting_a_slot_from_its_headers_agrees_with_decoding_every_group() {
        let mut groups = vec![
            group("a", vec![1, 2], vec![(0, Counters::default()); 3]),
            RunSlot { runs: 40, is_root: true, status: "error".into(), ..group("b", vec![], vec![]) },
            RunSlot {
                runs: 7,
                run_type: "chain".into(),
                latencies_ms: vec![0.1 + 0.2; 7],
                ..group("c", vec![], vec![])
            },
        ];
        groups[0].runs = 5;
        let packed = encode(&groups);
        let filters = [
            RunSlotFilter::default(),
            RunSlotFilter { run_type: Some("llm".into()), ..Default::default() },
            RunSlotFilter { error: Some(true), ..Default::default() },
            RunSlotFilter { is_root: Some(false), ..Default::default() },
            RunSlotFilter { run_type: Some("tool".into()), ..Default::default() },
        ];
        for filter in filters {
            let expected: u64 = groups.iter().filter(|g| filter.matches(g)).map(|g| g.runs).sum();
            let mut buffer = RunSlot::empty(DateTime::UNIX_EPOCH);
            assert_eq!(count_groups(&packed, &filter, &mut buffer), Some(expected), "{filter:?}");
        }
    }

    #[test]
    fn groups_round_trip_through_their_packed_form_including_extreme_counts() {
        let counters = |input: i64, output: i64| Counters {
            requests: 0,
            input_tokens: input,
            output_tokens: output,
            total_tokens: input.wrapping_add(output),
            cache_read_input_tokens: -1,
            cache_creation_input_tokens: 0,
        };
        let groups = [
            group(
                "op",
                vec![1, 2],
                vec![(0, counters(5, 7)), (1, counters(i64::MAX, 0)), (0, counters(i64::MIN, 300))],
            ),
            group("", vec![], vec![]),
            RunSlot { latencies_ms: vec![1044.702, 0.001, -3.5, 86_400_000.0], ..group("micros", vec![], vec![]) },
        ];
        let packed = encode(&groups);
        let mut bytes = packed.as_slice();
        let mut back = RunSlot::empty(DateTime::UNIX_EPOCH);
        decode_models(&mut bytes, &mut back.models).unwrap();
        assert_eq!(back.models, ["a", "bé"]);
        for g in &groups {
            decode_group(&mut bytes, &mut back).unwrap();
            assert_eq!(&back, g);
        }
        assert!(bytes.is_empty());
        let mut cut = &packed[..packed.len() - 1];
        decode_models(&mut cut, &mut back.models).unwrap();
        decode_group(&mut cut, &mut back).unwrap();
        decode_group(&mut cut, &mut back).unwrap();
        assert!(decode_group(&mut cut, &mut back).is_none(), "a cut group is refused");
        assert!(count_groups(&packed[..packed.len() - 1], &RunSlotFilter::default(), &mut back).is_none());
        assert_eq!(exact_micros(1044.702), Some(1_044_702));
        assert_eq!(exact_micros(0.1 + 0.2), None, "not a whole number of microseconds");
    }
}
