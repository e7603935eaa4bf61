//! LangSmith's run statistics (API.md §12): `POST /api/v1/runs/stats`, and the session
//! lookups `langsmith.Client.get_run_stats(project_names=...)` makes first. Calls are read as
//! runs by `store::runs`; `stats::runs` computes the answer.
use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{AppJson, Caller};
use crate::domain::costs::PriceBook;
use crate::domain::run_filter::{self, Cmp, RunFilter};
use crate::domain::{bounded_list, ProjectId, Timestamp};
use crate::error::{ApiError, Result, ValidationDetail};
use crate::state::AppState;
use crate::stats::runs::{self as run_stats, Answer, Grouping, RunCost, SlotGroup, SlotPricing};
use crate::stats::slots::Range;
use crate::store::prices as prices_store;
use crate::store::projects::{self, ProjectRow};
use crate::store::run_slots::{self, RunSlotFilter};
use crate::store::runs::{self as runs_store, GroupBy, RunQuery};
use crate::store::slots::{self as slots_store, Stale};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(run_stats))
        .routes(routes!(list_sessions))
        .routes(routes!(read_session))
        .routes(routes!(info))
}

/// LangSmith's run types.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunType {
    Tool,
    Chain,
    Llm,
    Retriever,
    Embedding,
    Prompt,
    Parser,
}

impl RunType {
    fn name(self) -> &'static str {
        match self {
            Self::Tool => "tool",
            Self::Chain => "chain",
            Self::Llm => "llm",
            Self::Retriever => "retriever",
            Self::Embedding => "embedding",
            Self::Prompt => "prompt",
            Self::Parser => "parser",
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupAttribute {
    Name,
    RunType,
    Tag,
    Metadata,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupByReq {
    pub attribute: GroupAttribute,
    /// The metadata key (a dotted path under `attributes`); required for `metadata`.
    #[serde(default)]
    pub path: Option<String>,
    /// 1–100, default 5: the largest groups by run count.
    #[serde(default)]
    pub max_groups: Option<i64>,
    /// Exactly these groups (also when empty), instead of the largest.
    #[serde(default, deserialize_with = "bounded_list")]
    pub groups: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"session": ["demo/app"], "is_root": true, "start_time": "2025-03-08T00:00:00Z", "end_time": "2025-03-11T00:00:00Z", "select": ["run_count", "latency_p50", "latency_p99", "error_rate", "total_tokens", "total_cost"], "group_by": {"attribute": "name"}}))]
pub struct RunStatsReq {
    /// 1–100 projects: `entity/project` or the project's UUID (`GET /api/v1/sessions`).
    #[serde(deserialize_with = "crate::domain::required_bounded_list")]
    pub session: Vec<String>,
    /// Call ids.
    #[serde(default, deserialize_with = "bounded_list")]
    pub id: Option<Vec<String>>,
    /// One trace id.
    #[serde(default)]
    pub trace: Option<String>,
    /// One parent call id.
    #[serde(default)]
    pub parent_run: Option<String>,
    #[serde(default)]
    pub run_type: Option<RunType>,
    /// Must be empty: this server stores no LangSmith examples.
    #[serde(default, deserialize_with = "bounded_list")]
    pub reference_example: Option<Vec<String>>,
    /// Only 1 (root runs).
    #[serde(default)]
    pub execution_order: Option<i64>,
    /// Inclusive bound on `started_at` (a time without a zone is UTC).
    #[serde(default)]
    pub start_time: Option<Timestamp>,
    /// Exclusive bound on `started_at`.
    #[serde(default)]
    pub end_time: Option<Timestamp>,
    #[serde(default)]
    pub error: Option<bool>,
    #[serde(default)]
    pub is_root: Option<bool>,
    /// LangSmith's filter language over the run.
    #[serde(default)]
    pub filter: Option<String>,
    /// The same language over the run's trace root.
    #[serde(default)]
    pub trace_filter: Option<String>,
    /// The same language over any run of the run's trace.
    #[serde(default)]
    pub tree_filter: Option<String>,
    /// Case-insensitive text in the run's name, inputs or output.
    #[serde(default)]
    pub query: Option<String>,
    /// Same as `query`.
    #[serde(default)]
    pub search_filter: Option<String>,
    /// Accepted, no effect.
    #[serde(default)]
    pub data_source_type: Option<String>,
    /// Accepted, no effect.
    #[serde(default)]
    pub skip_pagination: Option<bool>,
    /// Accepted, no effect.
    #[serde(default)]
    pub use_experimental_search: Option<bool>,
    /// Statistics to return (default all); `all_run_stats` and `all_token_stats` name groups.
    #[serde(default, deserialize_with = "bounded_list")]
    pub select: Option<Vec<String>>,
    #[serde(default)]
    pub group_by: Option<GroupByReq>,
    /// LangSmith's place for `group_by.groups`.
    #[serde(default, deserialize_with = "bounded_list")]
    pub groups: Option<Vec<String>>,
}

/// Most projects one request may read.
const MAX_SESSIONS: usize = 100;

/// The checked request: what to read, what to compute, how to group.
struct Plan {
    query: RunQuery,
    costs: Vec<(Cmp, f64)>,
    selected: [bool; run_stats::FIELDS.len()],
    grouping: Option<Grouping>,
}

impl Plan {
    /// What the run rollups must match, when they can answer this request at all: no
    /// condition on single runs, traces, text or cost, and groups they keep.
    fn slot_filter(&self) -> Option<RunSlotFilter> {
        let q = &self.query;
        let simple = q.ids.is_none()
            && q.trace.is_none()
            && q.parent_run.is_none()
            && q.filter.is_none()
            && q.trace_filter.is_none()
            && q.tree_filter.is_none()
            && q.search.is_empty()
            && self.costs.is_empty()
            && matches!(q.group_by, None | Some(GroupBy::Name | GroupBy::RunType));
        simple.then(|| RunSlotFilter { run_type: q.run_type.clone(), error: q.error, is_root: q.is_root })
    }
}

/// Check every field, reporting all problems at once.
fn plan(req: RunStatsReq, projects: Vec<String>) -> Result<Plan> {
    let mut problems = Vec::new();
    let mut problem =
        |path: &[&str], msg: String, input: Value| problems.push(ValidationDetail::value_error(path, msg, input));
    if req.reference_example.as_ref().is_some_and(|r| !r.is_empty()) {
        problem(
            &["reference_example"],
            "This server stores no LangSmith examples".into(),
            json!(req.reference_example),
        );
    }
    if let Some(order) = req.execution_order.filter(|o| *o != 1) {
        problem(&["execution_order"], "Only execution_order 1 (root runs) is supported".into(), json!(order));
    }
    let mut parse = |field: &str, text: &Option<String>| -> Option<RunFilter> {
        let text = text.as_deref()?;
        match run_filter::parse(text) {
            Ok(filter) => Some(filter),
            Err(error) => {
                problem(&[field], format!("Invalid filter: {error}"), json!(text));
                None
            }
        }
    };
    let filter = parse("filter", &req.filter);
    let trace_filter = parse("trace_filter", &req.trace_filter);
    let tree_filter = parse("tree_filter", &req.tree_filter);
    let (filter, costs) = match filter.map(run_filter::take_cost_conditions).transpose() {
        Ok(split) => split.unwrap_or((None, Vec::new())),
        Err(message) => {
            problem(&["filter"], message, json!(req.filter));
            (None, Vec::new())
        }
    };
    for (field, f) in [("trace_filter", &trace_filter), ("tree_filter", &tree_filter)] {
        if f.as_ref().is_some_and(run_filter::mentions_cost) {
            problem(&[field], "total_cost may only be compared in filter".into(), json!(null));
        }
    }
    let selected = match run_stats::selection(req.select.as_deref().unwrap_or_default()) {
        Ok(selected) if req.select.is_some() => selected,
        Ok(_) => [true; run_stats::FIELDS.len()],
        Err(name) => {
            problem(&["select"], format!("Unknown statistic {name:?}"), json!(name));
            [true; run_stats::FIELDS.len()]
        }
    };
    if req.groups.is_some() && req.group_by.as_ref().is_some_and(|g| g.groups.is_some()) {
        problem(&["groups"], "Give groups once: here or in group_by".into(), json!(req.groups));
    }
    let (group_by, grouping) = match req.group_by {
        None => {
            if req.groups.is_some() {
                problem(&["groups"], "groups needs group_by".into(), json!(req.groups));
            }
            (None, None)
        }
        Some(g) => {
            let max_groups = g.max_groups.unwrap_or(5);
            if !(1..=100).contains(&max_groups) {
                problem(&["group_by", "max_groups"], "max_groups is 1 to 100".into(), json!(max_groups));
            }
            let by = match g.attribute {
                GroupAttribute::Name => Some(GroupBy::Name),
                GroupAttribute::RunType => Some(GroupBy::RunType),
                GroupAttribute::Tag => Some(GroupBy::Tag),
                GroupAttribute::Metadata => {
                    match g.path.as_deref().map(|p| p.split('.').map(str::to_string).collect::<Vec<_>>()) {
                        Some(path) if !path.iter().any(String::is_empty) => Some(GroupBy::Metadata(path)),
                        _ => {
                            problem(
                                &["group_by", "path"],
                                "Grouping by metadata needs a path such as \"env\"".into(),
                                json!(g.path),
                            );
                            None
                        }
                    }
                }
            };
            let groups = g.groups.or(req.groups);
            (by, Some(Grouping { max_groups: max_groups.clamp(1, 100) as usize, groups }))
        }
    };
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let search = [req.query, req.search_filter].into_iter().flatten().filter(|s| !s.is_empty()).collect();
    let with_feedback = selected[run_stats::FIELDS.iter().position(|f| *f == "feedback_stats").unwrap_or_default()];
    Ok(Plan {
        query: RunQuery {
            projects,
            ids: req.id,
            trace: req.trace,
            parent_run: req.parent_run,
            run_type: req.run_type.map(|t| t.name().to_string()),
            start: req.start_time.map(|t| t.0),
            end: req.end_time.map(|t| t.0),
            error: req.error,
            is_root: if req.execution_order == Some(1) { Some(true) } else { req.is_root },
            filter,
            trace_filter,
            tree_filter,
            search,
            group_by,
            with_feedback,
        },
        costs,
        selected,
        grouping,
    })
}

/// Statistics over runs (API.md §12): one object, or with `group_by` an object per group.
#[utoipa::path(post, path = "/api/v1/runs/stats", tag = "stats", request_body = RunStatsReq,
    responses((status = 200, description = "The selected statistics (per group with group_by)", body = Object)))]
async fn run_stats(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<RunStatsReq>,
) -> Result<Json<Value>> {
    if req.session.is_empty() || req.session.len() > MAX_SESSIONS {
        return Err(ApiError::Validation(vec![ValidationDetail::value_error(
            &["session"],
            format!("Give 1 to {MAX_SESSIONS} sessions"),
            json!(req.session.len()),
        )]));
    }
    let projects = resolve_sessions(&state, &caller, &req.session).await?;
    let plan = plan(req, projects.iter().map(|p| p.as_str().to_string()).collect())?;
    let _heavy = state.heavy.enter(&caller.0.key_id).await?;
    let mut books: HashMap<String, Arc<PriceBook>> = HashMap::new();
    for project in &projects {
        books.insert(
            project.as_str().to_string(),
            prices_store::book(&state.db, &state.default_prices, project.as_str()).await?,
        );
    }
    let max_runs = state.settings.limits.stats_max_values;
    let slot_group = match plan.query.group_by {
        Some(GroupBy::RunType) => SlotGroup::RunType,
        _ => SlotGroup::Name,
    };
    let mut answer = Answer::new(plan.grouping.as_ref(), slot_group);
    // The rollups answer whole quarter hours when every condition is one they keep; priced
    // slots must have one price per model throughout.
    let slot_filter = plan.slot_filter();
    let mut read = run_stats::read_plan(
        plan.query.start,
        plan.query.end,
        slot_filter.is_some(),
        books.values().flat_map(|book| book.effective_dates()),
    );
    if let (Some(filter), Some(span)) = (&slot_filter, read.slot_span()) {
        // Stale slots (written since their last rebuild) are read raw, for every project: writes
        // never append run rollups, so every mark counts.
        let mut stale = Vec::new();
        for project in &projects {
            stale.extend(slots_store::stale_or_refresh(&state.db, project.as_str(), span, Stale::AnyMark).await?);
        }
        read = read.without_slots(stale);
        refuse_early(&state, &projects, &read.slots, filter, max_runs as u64).await?;
        for &range in &read.slots {
            for project in &projects {
                let mut pricing = SlotPricing::new(&books[project.as_str()]);
                // Stop as soon as the limit is passed: the answer keeps every run's values.
                run_slots::for_each(&state.db, project.as_str(), range, filter, |slot| {
                    answer.add_slot(slot, &mut pricing);
                    answer.run_count() <= max_runs as u64
                })
                .await?;
                if answer.run_count() > max_runs as u64 {
                    return Err(too_many_runs(max_runs));
                }
            }
        }
        if plan.query.with_feedback {
            for (value, kind, n) in runs_store::feedback_counts(&state.db, &plan.query, &read.slots).await? {
                answer.add_feedback(&value, &kind, u64::try_from(n).unwrap_or_default());
            }
        }
    }
    tracing::debug!(slot_ranges = read.slots.len(), raw_ranges = read.raw.len(), "runs/stats plan");
    for &(from, to) in &read.raw {
        let query = RunQuery { start: Some(from), end: Some(to), ..plan.query.clone() };
        let mut runs = answer.run_count() as usize;
        runs_store::scan(&state.db, &query, |row| {
            let cost = books.get(&row.project_id).map(|book| RunCost::of(&row.run, book)).unwrap_or_default();
            if !plan.costs.is_empty() {
                let total = cost.total();
                if !plan.costs.iter().all(|(cmp, value)| total.partial_cmp(value).is_some_and(|o| cmp.holds(o))) {
                    return true;
                }
            }
            runs += 1;
            answer.add(&row.groups, &row.run, &cost);
            runs <= max_runs
        })
        .await?;
        if runs > max_runs {
            return Err(too_many_runs(max_runs));
        }
    }
    Ok(Json(Value::Object(answer.render(&plan.selected))))
}

/// Refuse a request whose rollup ranges hold more than `max_runs` matching runs before
/// reading their values (the answer would hold them all first: ~250 MB at 2M runs). The
/// rollups' run counts bound it cheaply; only a bound over the limit costs a count of the
/// matching groups.
async fn refuse_early(
    state: &AppState,
    projects: &[ProjectId],
    ranges: &[Range],
    filter: &RunSlotFilter,
    max_runs: u64,
) -> Result<()> {
    let mut bound = Some(0u64);
    for &range in ranges {
        for project in projects {
            let runs = run_slots::runs_at_most(&state.db, project.as_str(), range).await?;
            bound = bound.zip(runs).map(|(a, b)| a.saturating_add(b));
        }
    }
    if bound.is_some_and(|n| n <= max_runs) {
        return Ok(());
    }
    let mut runs = 0u64;
    for &range in ranges {
        for project in projects {
            runs += run_slots::count(&state.db, project.as_str(), range, filter, max_runs - runs).await?;
            if runs > max_runs {
                return Err(too_many_runs(max_runs as usize));
            }
        }
    }
    Ok(())
}

fn too_many_runs(max_runs: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "More than {max_runs} runs match (STATS_MAX_VALUES); narrow the request with start_time/end_time or a filter"
    ))
}

/// The projects named by `session` (ids or UUIDs), each accessible to the caller (else 403,
/// the same whether a project exists or not).
async fn resolve_sessions(state: &AppState, caller: &Caller, sessions: &[String]) -> Result<Vec<ProjectId>> {
    let forbidden = || ApiError::Forbidden("You do not have access to this session".into());
    let mut visible: Option<Vec<ProjectRow>> = None;
    let mut out: Vec<ProjectId> = Vec::new();
    for (i, session) in sessions.iter().enumerate() {
        let project = if let Ok(uuid) = uuid::Uuid::parse_str(session) {
            if visible.is_none() {
                visible = Some(visible_projects(state, caller).await?);
            }
            visible
                .iter()
                .flatten()
                .filter_map(|row| ProjectId::parse(&row.project_id))
                .find(|p| p.uuid() == uuid)
                .ok_or_else(forbidden)?
        } else {
            let project = ProjectId::parse(session).ok_or_else(|| {
                ApiError::Validation(vec![ValidationDetail::new(
                    "value_error",
                    vec![json!("body"), json!("session"), json!(i)],
                    "A session is 'entity/project' or a project UUID",
                    json!(session),
                )])
            })?;
            caller.authorize(&project).map_err(|_| forbidden())?;
            project
        };
        if !out.contains(&project) {
            out.push(project);
        }
    }
    Ok(out)
}

async fn visible_projects(state: &AppState, caller: &Caller) -> Result<Vec<ProjectRow>> {
    Ok(projects::list(&state.db, caller.0.listable_entities()).await?)
}

/// A project as LangSmith's `TracerSession`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    pub id: String,
    /// The project part of `entity/project`.
    pub name: String,
    pub tenant_id: String,
    /// The earliest call, or the project's registration.
    pub start_time: Timestamp,
    pub end_time: Option<Timestamp>,
    pub description: Option<String>,
    pub reference_dataset_id: Option<String>,
    pub default_dataset_id: Option<String>,
    /// `{"project_id": "entity/project"}`.
    #[schema(value_type = Object)]
    pub extra: Map<String, Value>,
}

impl Session {
    fn of(row: &ProjectRow) -> Option<Self> {
        let project = ProjectId::parse(&row.project_id)?;
        let start = row.first_call_at.map_or(row.created_at, |first| first.min(row.created_at));
        Some(Session {
            id: project.uuid().to_string(),
            name: project.name().to_string(),
            tenant_id: project.tenant_uuid().to_string(),
            start_time: Timestamp(start),
            end_time: None,
            description: None,
            reference_dataset_id: None,
            default_dataset_id: None,
            extra: Map::from_iter([("project_id".to_string(), json!(project.as_str()))]),
        })
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct SessionsParams {
    /// A project name (the part after the `/`) or a whole `entity/project`.
    pub name: Option<String>,
    /// Default 100, at most 1000.
    pub limit: Option<String>,
    pub offset: Option<String>,
    /// Accepted (`True`/`False`), no effect.
    pub include_stats: Option<String>,
}

/// Projects the key can see, as LangSmith sessions (ordered by `entity/project`).
#[utoipa::path(get, path = "/api/v1/sessions", tag = "stats", params(SessionsParams),
    responses((status = 200, body = Vec<Session>), (status = 401, body = crate::error::ErrorBody),
        (status = 422, description = "`limit` or `offset` is not an integer from 0 to 1000", body = crate::error::ValidationErrorBody)))]
async fn list_sessions(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<SessionsParams>,
) -> Result<Json<Vec<Session>>> {
    let number = |field: &str, text: &Option<String>, default: i64| -> Result<i64> {
        let Some(text) = text else { return Ok(default) };
        text.parse::<i64>().ok().filter(|n| (0..=1000).contains(n)).ok_or_else(|| {
            ApiError::Validation(vec![ValidationDetail::new(
                "int_parsing",
                vec![json!("query"), json!(field)],
                "Input should be an integer from 0 to 1000",
                json!(text),
            )])
        })
    };
    let (limit, offset) = (number("limit", &params.limit, 100)?, number("offset", &params.offset, 0)?);
    let sessions = visible_projects(&state, &caller)
        .await?
        .iter()
        .filter(|row| match &params.name {
            None => true,
            Some(name) => row.project_id == *name || row.project_id.split_once('/').is_some_and(|(_, p)| p == name),
        })
        .filter_map(Session::of)
        .skip(offset as usize)
        .take(limit as usize)
        .collect();
    Ok(Json(sessions))
}

/// One project by its session UUID (404 when the key sees no such project).
#[utoipa::path(get, path = "/api/v1/sessions/{id}", tag = "stats", params(("id" = String, Path)),
    responses((status = 200, body = Session), (status = 401, body = crate::error::ErrorBody),
        (status = 404, description = "No project of this key has that UUID", body = crate::error::ErrorBody)))]
async fn read_session(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<Session>> {
    let not_found = || ApiError::NotFound(format!("Session {id} not found"));
    let uuid = uuid::Uuid::parse_str(&id).map_err(|_| not_found())?;
    visible_projects(&state, &caller)
        .await?
        .iter()
        .filter_map(Session::of)
        .find(|s| s.id == uuid.to_string())
        .map(Json)
        .ok_or_else(not_found)
}

/// LangSmith's server info (the SDK reads it in the background when a client starts).
#[utoipa::path(get, path = "/api/v1/info", tag = "service", security(()),
    responses((status = 200, description = "`{\"version\": ...}`", body = Object)))]
async fn info() -> Json<Value> {
    Json(json!({ "version": env!("CARGO_PKG_VERSION") }))
}
