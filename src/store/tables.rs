//! SQL for tables (`/table/*`): rows are stored once per project by digest; a table is its
//! ordered list of row digests, one `table_entries` row each.
use sqlx::{PgConnection, PgExecutor, PgPool, Postgres, QueryBuilder};
use tokio::sync::mpsc;

/// Store rows (`(digest, canonical JSON)`) not stored yet.
#[tracing::instrument(level = "debug", skip_all, fields(rows = rows.len()))]
pub async fn insert_rows(conn: &mut PgConnection, project: &str, rows: &[(String, String)]) -> Result<(), sqlx::Error> {
    // Chunks keep each statement's arrays to a few megabytes.
    for chunk in rows.chunks(5_000) {
        let (digests, vals): (Vec<&str>, Vec<&str>) = chunk.iter().map(|(d, v)| (d.as_str(), v.as_str())).unzip();
        sqlx::query(
            "insert into table_rows (project_id, digest, val_dump)
             select $1, d, v from unnest($2::text[], $3::text[]) r(d, v)
             on conflict do nothing",
        )
        .bind(project)
        .bind(digests)
        .bind(vals)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// How many of `digests` are stored rows of the project (distinct).
pub async fn count_known_rows(db: impl PgExecutor<'_>, project: &str, digests: &[String]) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select count(*) from table_rows where project_id = $1 and digest = any($2)")
        .bind(project)
        .bind(digests)
        .fetch_one(db)
        .await
}

/// Store a table (its rows must be stored); a table stored already is left as it is.
#[tracing::instrument(level = "debug", skip_all, fields(rows = row_digests.len()))]
pub async fn insert_table(
    conn: &mut PgConnection,
    project: &str,
    digest: &str,
    row_digests: &[String],
) -> Result<(), sqlx::Error> {
    let created =
        sqlx::query("insert into tables (project_id, digest, row_count) values ($1, $2, $3) on conflict do nothing")
            .bind(project)
            .bind(digest)
            .bind(row_digests.len() as i32)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    if created == 0 {
        return Ok(());
    }
    for (n, chunk) in row_digests.chunks(10_000).enumerate() {
        sqlx::query(
            "insert into table_entries (project_id, table_digest, row_index, row_digest)
             select $1, $2, $3 + i - 1, d from unnest($4::text[]) with ordinality e(d, i)",
        )
        .bind(project)
        .bind(digest)
        .bind((n * 10_000) as i32)
        .bind(chunk)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The row digests of a table, in order; None when there is no such table.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn row_digests(db: &sqlx::PgPool, project: &str, digest: &str) -> Result<Option<Vec<String>>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let exists: bool = sqlx::query_scalar("select exists (select 1 from tables where project_id = $1 and digest = $2)")
        .bind(project)
        .bind(digest)
        .fetch_one(&mut *tx)
        .await?;
    if !exists {
        return Ok(None);
    }
    let digests = sqlx::query_scalar(
        "select row_digest from table_entries where project_id = $1 and table_digest = $2 order by row_index",
    )
    .bind(project)
    .bind(digest)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(digests))
}

/// Row counts of the given tables that exist, with the bytes of their rows' values when
/// `with_size` (0 otherwise).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn counts(
    db: impl PgExecutor<'_>,
    project: &str,
    digests: &[String],
    with_size: bool,
) -> Result<Vec<(String, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "select t.digest, t.row_count::int8,
                case when $3 then coalesce((select sum(octet_length(r.val_dump)) from table_entries e
                          join table_rows r on r.project_id = e.project_id and r.digest = e.row_digest
                          where e.project_id = t.project_id and e.table_digest = t.digest), 0)::int8 else 0 end
         from tables t where t.project_id = $1 and t.digest = any($2)",
    )
    .bind(project)
    .bind(digests)
    .bind(with_size)
    .fetch_all(db)
    .await
}

/// What `/table/query` asks for.
#[derive(Debug, Clone, Default)]
pub struct RowQuery {
    pub row_digests: Option<Vec<String>>,
    /// JSON paths into the row's value, descending when true; table order when empty.
    pub sort: Vec<(Vec<String>, bool)>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// One row of a table, as `/table/query` returns it.
#[derive(Debug, sqlx::FromRow)]
pub struct TableRow {
    pub digest: String,
    pub val_dump: String,
    pub original_index: i32,
}

/// Rows of a table: filtered, sorted and paged.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn query_rows(
    db: impl PgExecutor<'_>,
    project: &str,
    table: &str,
    query: &RowQuery,
) -> Result<Vec<TableRow>, sqlx::Error> {
    rows_query(project.to_string(), table.to_string(), query).build_query_as().fetch_all(db).await
}

/// The same rows as [`query_rows`], streamed (see [`super::spawn_rows`]).
pub fn stream_rows(
    db: PgPool,
    project: String,
    table: String,
    query: &RowQuery,
) -> mpsc::Receiver<Result<TableRow, sqlx::Error>> {
    super::spawn_rows(db, rows_query(project, table, query))
}

fn rows_query(project: String, table: String, query: &RowQuery) -> QueryBuilder<'static, Postgres> {
    let mut qb = QueryBuilder::<Postgres>::new(
        "select e.row_digest as digest, r.val_dump, e.row_index as original_index
         from table_entries e join table_rows r on r.project_id = e.project_id and r.digest = e.row_digest
         where e.project_id = ",
    );
    qb.push_bind(project).push(" and e.table_digest = ").push_bind(table);
    let plain = query.row_digests.is_none() && query.sort.is_empty();
    if let Some(digests) = &query.row_digests {
        qb.push(" and e.row_digest = any(").push_bind(digests.clone()).push(")");
    }
    if plain {
        // Positions are dense, so a page of a plain read is a range of the primary key.
        let offset = query.offset.unwrap_or(0).min(i64::from(i32::MAX));
        qb.push(" and e.row_index >= ").push_bind(offset as i32);
        if let Some(limit) = query.limit {
            qb.push(" and e.row_index < ").push_bind(offset.saturating_add(limit).min(i64::from(i32::MAX)) as i32);
        }
        qb.push(" order by e.row_index");
        return qb;
    }
    qb.push(" order by ");
    for (path, descending) in &query.sort {
        // Numbers before strings, null and missing last (as calls sort by JSON paths).
        let direction = if *descending { "desc" } else { "asc" };
        qb.push("weave_json_sort_rank(r.val_dump::jsonb #> ").push_bind(path.clone()).push("::text[]), ");
        qb.push("weave_json_sort_number(r.val_dump::jsonb #> ")
            .push_bind(path.clone())
            .push(format_args!("::text[]) {direction}, "));
        qb.push("weave_json_text(r.val_dump::jsonb #> ")
            .push_bind(path.clone())
            .push(format_args!(r#"::text[]) collate "C" {direction}, "#));
    }
    qb.push("e.row_index");
    if let Some(limit) = query.limit {
        qb.push(" limit ").push_bind(limit);
    }
    if let Some(offset) = query.offset {
        qb.push(" offset ").push_bind(offset);
    }
    qb
}

/// One row of a table by its digest (the first occurrence), for ref reads.
pub async fn row_of_table(
    db: impl PgExecutor<'_>,
    project: &str,
    table: &str,
    row_digest: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "select r.val_dump from table_entries e
         join table_rows r on r.project_id = e.project_id and r.digest = e.row_digest
         where e.project_id = $1 and e.table_digest = $2 and e.row_digest = $3
         order by e.row_index limit 1",
    )
    .bind(project)
    .bind(table)
    .bind(row_digest)
    .fetch_optional(db)
    .await
}
