// SPDX-License-Identifier: GPL-2.0
/* A module for the QEMU oracle's self-built kernel: a few imports, each versioned. */
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/slab.h>

static int __init kmc_test_init(void)
{
	void *p = kmalloc(16, GFP_KERNEL);

	kfree(p);
	pr_info("kmc_test: loaded\n");
	return 0;
}

static void __exit kmc_test_exit(void)
{
}

module_init(kmc_test_init);
module_exit(kmc_test_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodcompat QEMU oracle test module");
