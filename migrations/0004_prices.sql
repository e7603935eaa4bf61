-- The price table of API.md §6: USD per token, at the default level (shipped rows) or per
-- project (from /cost/create). Prices are chosen per usage row in Rust (domain::costs), so
-- this table is read whole per project and stays small.
create table llm_token_prices (
    id                              text primary key,
    pricing_level                   text not null check (pricing_level in ('default', 'project')),
    pricing_level_id                text not null,
    provider_id                     text not null default 'default',
    llm_id                          text not null,
    prompt_token_cost               double precision not null,
    completion_token_cost           double precision not null,
    cache_read_input_token_cost     double precision not null default 0,
    cache_creation_input_token_cost double precision not null default 0,
    prompt_token_cost_unit          text not null default 'USD',
    completion_token_cost_unit      text not null default 'USD',
    effective_date                  timestamptz not null,
    created_at                      timestamptz not null default now(),
    created_by                      text not null
);
create index llm_token_prices_level on llm_token_prices (pricing_level, pricing_level_id);
