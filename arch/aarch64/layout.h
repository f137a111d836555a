/* Guest-physical memory map of an aarch64 runvm guest (#18). Every guest
 * address the arm64 port uses comes from here. The devices sit below 1 GiB
 * and RAM starts at 1 GiB, as on QEMU's virt machine, so a kernel that
 * boots there boots here. */
#ifndef RUNVM_ARM64_LAYOUT_H
#define RUNVM_ARM64_LAYOUT_H

#define ARM64_KiB (1ULL << 10)
#define ARM64_MiB (1ULL << 20)
#define ARM64_GiB (1ULL << 30)

/* GICv3 (KVM's in-kernel vGIC): the distributor, then one 128 KiB
 * redistributor frame pair per vCPU. */
#define ARM64_GIC_DIST_BASE   0x08000000ULL
#define ARM64_GIC_DIST_SIZE   0x10000ULL
#define ARM64_GIC_REDIST_BASE 0x080a0000ULL
#define ARM64_GIC_REDIST_SIZE 0x20000ULL /* per vCPU */
#define ARM64_MAX_CPUS        123        /* redistributors up to the UART */

/* The UART (16550A-compatible, the same model as x86's COM1), the boot
 * timer's byte, the virtio-mmio windows. */
#define ARM64_UART_BASE       0x09000000ULL
#define ARM64_UART_SIZE       0x1000ULL
#define ARM64_BOOT_TIMER_BASE 0x09010000ULL
#define ARM64_BOOT_TIMER_SIZE 0x1000ULL
#define ARM64_VIRTIO_BASE     0x0a000000ULL
#define ARM64_VIRTIO_SIZE     0x200ULL
#define ARM64_VIRTIO_MAX      16

/* Interrupts: shared peripheral interrupts (SPI n is GIC INTID 32 + n):
 * the UART's, then one per virtio-mmio slot. The architected timer's
 * private (PPI) ones are KVM's: secure and non-secure physical, virtual,
 * hypervisor. */
#define ARM64_SPI_UART        1
#define ARM64_SPI_VIRTIO_BASE 16
#define ARM64_PPI_TIMER_SEC   13
#define ARM64_PPI_TIMER_NS    14
#define ARM64_PPI_TIMER_VIRT  11
#define ARM64_PPI_TIMER_HYP   10

/* RAM: from 1 GiB up, in one piece. The kernel goes text_offset above the
 * first 2 MiB-aligned address (its image_size covers its BSS and early
 * page tables); the device tree and the initramfs go high, but within
 * ARM64_INITRD_WINDOW of the RAM base (booting.rst: the initramfs must lie
 * in a 1 GiB-aligned 32 GiB window that covers the kernel), below a gap
 * of ARM64_RAM_TOP_GAP (docs/aarch64.md). */
#define ARM64_RAM_BASE      0x40000000ULL
#define ARM64_RAM_MAX       (512ULL * ARM64_GiB)
#define ARM64_FDT_MAX       (2ULL * ARM64_MiB) /* booting.rst: at most 2 MiB */
#define ARM64_RAM_TOP_GAP   (2ULL * ARM64_MiB)
#define ARM64_INITRD_WINDOW (32ULL * ARM64_GiB)

#endif
