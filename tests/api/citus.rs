//! `scripts/citus/distribute.sql` (README "Scaling out") against the real schema. Citus is not
//! installable here, so its two functions are stood in for by ones that record what they are
//! asked and check it: the script must distribute every table that has a `project_id` by it,
//! make every other table a reference table, and name nothing that does not exist.
use sqlx::PgPool;
use weave_trace_server::store::MIGRATOR;

const STANDINS: &str = r#"
create table citus_asked (tbl regclass primary key, kind text not null, colocate_with text);
create function create_reference_table(t regclass) returns void language sql
    as $$ insert into citus_asked values (t, 'reference', null) $$;
create function create_distributed_table(t regclass, col text, colocate_with text default 'default') returns void
language plpgsql as $$
begin
    if not exists (select 1 from pg_attribute where attrelid = t and attname = col and not attisdropped) then
        raise exception '% has no column %', t, col;
    end if;
    insert into citus_asked values (t, 'distributed by ' || col, colocate_with);
end $$;
"#;

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_citus_script_distributes_every_project_table_by_project_and_references_the_rest(pool: PgPool) {
    sqlx::raw_sql(STANDINS).execute(&pool).await.unwrap();
    let script = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/citus/distribute.sql")).unwrap();
    // Everything but loading the extension itself.
    let script: String =
        script.lines().filter(|line| !line.starts_with("create extension")).collect::<Vec<_>>().join("\n");
    sqlx::raw_sql(&script).execute(&pool).await.unwrap();

    let tables: Vec<(String, bool)> = sqlx::query_as(
        "select c.relname::text, exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'project_id')
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'public' and c.relkind = 'r' and c.relname not in ('_sqlx_migrations', 'citus_asked')
         order by 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(tables.len() >= 17, "{tables:?}");
    for (table, has_project) in tables {
        let asked: Option<(String, Option<String>)> =
            sqlx::query_as("select kind, colocate_with from citus_asked where tbl = $1::regclass")
                .bind(&table)
                .fetch_optional(&pool)
                .await
                .unwrap();
        let expected = if has_project {
            let colocated = if table == "calls" { "default" } else { "calls" };
            Some(("distributed by project_id".to_string(), Some(colocated.to_string())))
        } else {
            Some(("reference".to_string(), None))
        };
        assert_eq!(asked, expected, "{table}");
    }
}
