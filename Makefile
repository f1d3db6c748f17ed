# The two commands of the README; bin/dev does the work so that make is optional.
.PHONY: run test lint bench

run:
	bin/dev run

test:
	bin/dev test

lint:
	python3 -m uv run ruff check .
	python3 -m uv run ruff format --check .

bench:
	python3 -m uv run python bench/startup.py
