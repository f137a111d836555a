# tests/bench: the native peer of the exec round-trip benchmark
# (tests/bench/run).
TEST_PROGS += bench_spawn
