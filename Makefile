# The two commands a new user needs (see README.md):
#   make demo   set up, then run the main job: simulate BTC3L and BTC3S over 2014-2022 on SQLite
#   make test   set up, then run the whole test suite (PostgreSQL and Anvil tests included)
.PHONY: setup demo test lint bench clean fuzz crash

setup:
	bash scripts/setup.sh

demo: setup
	mkdir -p out
	.venv/bin/token-ledger --db sqlite:///out/demo.db simulate --replace

test: setup
	.venv/bin/ruff check .
	.venv/bin/lint-imports
	.venv/bin/mypy
	.venv/bin/python -m pytest -q --numprocesses=auto --maxprocesses=4

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports
	.venv/bin/mypy

bench: setup
	.venv/bin/python bench/bench_kernel.py
	.venv/bin/python bench/bench_fund.py
	.venv/bin/python bench/bench_fund_ops.py
	.venv/bin/python bench/bench_chain.py
	.venv/bin/python bench/bench_proof.py

clean:
	rm -rf .venv node_modules token-ledger.db* out .pytest_cache .ruff_cache .mypy_cache .hypothesis

# Long runs of issue 9's checks: the CLI fuzzer with many examples (random seed), and the crash
# harness (100 SIGKILLs per target on SQLite and PostgreSQL; docs/reliability.md).
fuzz: setup
	TOKEN_LEDGER_FUZZ_EXAMPLES=$${TOKEN_LEDGER_FUZZ_EXAMPLES:-5000} TOKEN_LEDGER_FUZZ_RANDOM=1 \
		.venv/bin/python -m pytest -q tests/test_fuzz_cli.py

crash: setup
	.venv/bin/python bench/crash_harness.py
