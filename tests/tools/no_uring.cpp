// no_uring: runs a program under a seccomp filter that refuses io_uring, as Docker's default
// profile (since 25) and hardened hosts do, to check that rondo's binaries then fail with a
// clear message and never abort.
//
//   no_uring [--errno EPERM|ENOSYS] PROGRAM [ARGS...]
//
// The filter makes io_uring_setup, io_uring_enter and io_uring_register fail with the chosen
// errno (EPERM by default) and allows every other system call. It is installed with
// PR_SET_NO_NEW_PRIVS, so no privilege is needed, and it is inherited across execve and by
// every thread the program starts. Exit status: the program's, or 126 when the filter cannot be
// installed, 127 when the program cannot be run.
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <string_view>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace {

#if defined(__x86_64__)
constexpr unsigned this_arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr unsigned this_arch = AUDIT_ARCH_AARCH64;
#else
#error "no_uring: add this architecture's AUDIT_ARCH_ value"
#endif

constexpr sock_filter stmt(unsigned short code, unsigned k) {
  return {code, 0, 0, k};
}
constexpr sock_filter jump(unsigned short code, unsigned k, unsigned char jt, unsigned char jf) {
  return {code, jt, jf, k};
}

}  // namespace

int main(int argc, char** argv) {
  int err = EPERM;
  int first = 1;
  if (argc > 2 && std::string_view(argv[1]) == "--errno") {
    err = std::string_view(argv[2]) == "ENOSYS" ? ENOSYS : EPERM;
    first = 3;
  }
  if (first >= argc) {
    std::fprintf(stderr, "usage: no_uring [--errno EPERM|ENOSYS] PROGRAM [ARGS...]\n");
    return 2;
  }
  const auto deny =
      static_cast<unsigned>(SECCOMP_RET_ERRNO | (static_cast<unsigned>(err) & SECCOMP_RET_DATA));
  const sock_filter program[] = {
      // A foreign architecture's syscall numbers mean other calls: refuse them all.
      stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      jump(BPF_JMP | BPF_JEQ | BPF_K, this_arch, 1, 0),
      stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
      stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      jump(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 3, 0),
      jump(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 2, 0),
      jump(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 1, 0),
      stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      stmt(BPF_RET | BPF_K, deny),
  };
  const sock_fprog prog{static_cast<unsigned short>(sizeof program / sizeof program[0]),
                        const_cast<sock_filter*>(program)};
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
      ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
    std::fprintf(stderr, "no_uring: cannot install the seccomp filter: %s\n", std::strerror(errno));
    return 126;
  }
  ::execvp(argv[first], argv + first);
  std::fprintf(stderr, "no_uring: cannot run %s: %s\n", argv[first], std::strerror(errno));
  return 127;
}
