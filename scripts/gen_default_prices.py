"""Generate migrations/0004_default_prices.sql from the `genai-prices` package's data.

Usage (needs pydantic; the test venv has it):
    pip download --no-deps genai-prices==0.2.3 -d /tmp/gp && cd /tmp/gp && unzip -q *.whl
    echo > genai_prices/__init__.py   # skip the package's network updater
    PYTHONPATH=/tmp/gp .venv/bin/python scripts/gen_default_prices.py > migrations/0004_default_prices.sql

Prices are USD per token (the package gives USD per million tokens). Conditional prices with a
start date become one row per date (effective_date); unconditional ones are effective from
2020-01-01. Only OpenAI, Anthropic, Google, Mistral and Meta (Llama) models are kept.
"""

import datetime
import importlib.metadata
import sys
from decimal import Decimal

from genai_prices import data

PROVIDERS = {
    "openai": lambda m: True,
    "anthropic": lambda m: True,
    "google": lambda m: m.startswith("gemini") or m.startswith("gemma"),
    "mistral": lambda m: True,
    "meta": lambda m: True,
    "together": lambda m: "llama" in m.lower(),
    "groq": lambda m: "llama" in m.lower(),
}
DEFAULT_START = datetime.date(2020, 1, 1)


def per_token(value) -> str:
    if value is None:
        return "0"
    base = getattr(value, "base", value)  # tiered prices: the base tier
    return format((Decimal(base) / Decimal(1_000_000)).normalize(), "f")


def price_rows(model):
    prices = model.prices
    if not isinstance(prices, list):
        yield DEFAULT_START, prices
        return
    for conditional in prices:
        constraint = conditional.constraint
        if constraint is None:
            yield DEFAULT_START, conditional.prices
        elif type(constraint).__name__ == "StartDateConstraint":
            yield constraint.start_date, conditional.prices


def sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def main() -> None:
    version = importlib.metadata.version("genai-prices") if "genai_prices" in sys.modules else "0.2.3"
    print("-- Default LLM prices, USD per token, shipped with the server (API.md §6).")
    print(f"-- Source: the genai-prices package {version} on PyPI (pydantic/genai-prices, data as of 2026-11),")
    print(f"-- generated on {datetime.date.today().isoformat()} by scripts/gen_default_prices.py; do not edit by hand.")
    print("-- A later migration may add newer rows; rows are never edited once landed.")
    print("insert into llm_token_prices (id, pricing_level, pricing_level_id, provider_id, llm_id, prompt_token_cost,")
    print("    completion_token_cost, cache_read_input_token_cost, cache_creation_input_token_cost, effective_date, created_by)")
    print("values")
    seen = set()
    rows = []
    for provider in data.providers:
        keep = PROVIDERS.get(provider.id)
        if keep is None:
            continue
        for model in provider.models:
            if not keep(model.id) or model.id in seen:
                continue
            seen.add(model.id)
            for start, price in price_rows(model):
                if price.input_mtok is None and price.output_mtok is None:
                    continue
                rows.append(
                    f"    ({sql_text('default:' + model.id + ':' + start.isoformat())}, 'default', 'default', "
                    f"{sql_text(provider.id)}, {sql_text(model.id)}, {per_token(price.input_mtok)}, "
                    f"{per_token(price.output_mtok)}, {per_token(price.cache_read_mtok)}, "
                    f"{per_token(price.cache_write_mtok)}, '{start.isoformat()}T00:00:00Z', 'genai-prices')"
                )
    print(",\n".join(rows) + ";")


if __name__ == "__main__":
    main()
