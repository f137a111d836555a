#!/usr/bin/env python3
"""Holds one KVM vCPU whose local APIC stays software-disabled for as long
as the outer VM lives, and does nothing else.

Why: KVM counts such vCPUs in a static key (apic_sw_disabled) that flips
0->1 whenever a VM is created and back 1 s after its guest enables the
APIC; each flip rewrites KVM's code (text_poke_bp) while other CPUs run
it. Under QEMU TCG that cross-modification has wedged the outer VM, with a
CPU stuck at that very branch in __apic_accept_irq (a soft lockup at
__apic_accept_irq+0x72, the apic_sw_disabled jump label). With the count
held at 1 or more the key never flips again.

usage: kvm-pin.py   (returns once the vCPU exists; a child holds it)"""
import fcntl
import os
import signal

KVM_CREATE_VM = 0xAE01  # _IO(KVMIO, 0x01)
KVM_CREATE_VCPU = 0xAE41  # _IO(KVMIO, 0x41)
KVM_CREATE_IRQCHIP = 0xAE60  # _IO(KVMIO, 0x60): the in-kernel LAPIC

kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
vm = fcntl.ioctl(kvm, KVM_CREATE_VM, 0)
fcntl.ioctl(vm, KVM_CREATE_IRQCHIP, 0)
vcpu = fcntl.ioctl(vm, KVM_CREATE_VCPU, 0)  # never run: its APIC stays off
if os.fork() == 0:
    os.setsid()
    while True:
        signal.pause()
