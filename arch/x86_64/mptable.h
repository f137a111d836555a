/* Intel MultiProcessor Specification 1.4 tables: how a Linux guest without
 * ACPI finds its CPUs, its IOAPIC and the ISA interrupt routing. Pure. */
#ifndef RUNVM_MPTABLE_H
#define RUNVM_MPTABLE_H

#include <stddef.h>
#include <stdint.h>

/* CPUs an MP table in LAYOUT_MPTABLE_MAX bytes describes (each processor
 * entry takes 20 bytes; 32 leave room for the rest). */
#define MPTABLE_MAX_CPUS 32
/* IOAPIC input pins, each routed 1:1 from ISA IRQ n (KVM's IOAPIC). */
#define MPTABLE_IOAPIC_PINS 24

/* Bytes the tables for nr_cpus take. */
size_t mptable_size(unsigned int nr_cpus);

/* Builds the floating pointer structure followed by the configuration table
 * into buf (len bytes), as they are to appear at guest address gpa. CPU i
 * gets APIC id i; the IOAPIC gets id nr_cpus. 0, or -EINVAL for nr_cpus 0
 * or above MPTABLE_MAX_CPUS, -ENOSPC if buf is too small. */
int mptable_build(uint8_t *buf, size_t len, uint64_t gpa, unsigned int nr_cpus)
    __attribute__((warn_unused_result));

#endif
