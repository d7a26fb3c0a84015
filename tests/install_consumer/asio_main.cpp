// rondo::asio from the installed package: an asio::io_context drives a rondo io_context until a
// spawned rondo task stops it.
#include <rondo/asio.hpp>

#include <boost/asio/io_context.hpp>

int main() {
  boost::asio::io_context ax(1);
  rondo::io_context io;
  rondo::asio_bridge::driver drv(ax, io);
  bool ran = false;
  io.spawn([](rondo::io_context& ctx, bool& r) -> rondo::task<> {
    (void)co_await ctx.nop();
    r = true;
    ctx.stop();
  }(io, ran));
  ax.run();
  return ran && !drv.attached() ? 0 : 1;
}
