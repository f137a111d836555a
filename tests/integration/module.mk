# tests/integration: programs the integration tests run on real KVM.
# kvm_smoke: a few guest instructions of this arch's run to one exit.
TEST_PROGS += kvm_smoke
ifeq ($(ARCH),aarch64)
kvm_smoke_SRCS := tests/integration/kvm_smoke_arm64.c
endif
