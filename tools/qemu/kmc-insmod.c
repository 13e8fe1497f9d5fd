/* One finit_module(2) call, as kmod's insmod makes it (libkmod-module.c kmod_module_insert_module):
 * prints the errno name and exits with it, so the kernel checks the module exactly once. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: kmc-insmod MODULE.ko\n");
		return 255;
	}
	int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "kmc-insmod: %s: %s\n", argv[1], strerror(errno));
		return 255;
	}
	if (syscall(SYS_finit_module, fd, "", 0) != 0) {
		int e = errno;
		fprintf(stderr, "kmc-insmod: finit_module: %s\n", strerror(e));
		return e;
	}
	return 0;
}
