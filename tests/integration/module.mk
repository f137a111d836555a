# tests/integration: programs the integration tests run on real KVM.
TEST_PROGS += kvm_smoke
