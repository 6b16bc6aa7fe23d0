// The classify application's Verilog (boards.classify.ClassifyApp), run by Verilator as a
// board behind a pseudo-terminal. Bytes the host writes to the pty are sent into the design's
// rx pin as 8N1 frames at DIVISOR cycles per bit; the design's tx pin is sampled in the middle
// of each bit and every byte it sends is written back to the pty. When the design is idle
// (not busy, both lines quiet) the harness sleeps in poll() instead of clocking: simulated time
// only passes while something happens.
//
// usage: pty_board FD DIVISOR [DROP]   FD: the pty master (inherited); DROP: index of a byte
//        from the host to lose on the line (fault injection); stdin closing ends the run.
// On exit it prints "cycles C requests R answers A latency L" to stderr: L is the total of the
// cycles from each request's last stop bit to its answer's first start bit.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <poll.h>
#include <unistd.h>

#include "Vclassify_app.h"
#include "verilated.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s FD DIVISOR [DROP]\n", argv[0]);
        return 2;
    }
    const int fd = atoi(argv[1]);
    const long divisor = atol(argv[2]);
    const long drop = argc > 3 ? atol(argv[3]) : -1;
    VerilatedContext context;
    Vclassify_app top(&context);
    unsigned long long cycle = 0;
    auto tick = [&]() {
        top.clk = 0;
        top.eval();
        top.clk = 1;
        top.eval();
        cycle++;
    };
    top.rx = 1;
    top.rst = 1;
    for (int k = 0; k < 4; k++) tick();
    top.rst = 0;

    std::deque<unsigned char> pending;      // bytes from the host, not yet on the line
    long received = 0;                      // bytes read from the pty so far
    int rx_frame = 0, rx_bits = 0;          // the frame being sent into rx, bits left
    long rx_timer = 0;
    int tx_state = -1;                      // -1 idle, 0 start bit, 1..8 data, 9 stop
    long tx_timer = 0;
    int tx_byte = 0;
    long quiet = 0;                         // cycles since either line last moved
    unsigned long long requests = 0, answers = 0, latency = 0, request_end = 0;
    bool waiting = false;                   // a request ended, its answer has not started
    bool in_frame = false;

    for (;;) {
        // Idle: sleep until the host writes; otherwise just look.
        bool idle = pending.empty() && rx_bits == 0 && tx_state < 0 && !top.busy &&
                    quiet > 20 * divisor;
        if (idle || (cycle & 255) == 0) {
            struct pollfd fds[2] = {{fd, POLLIN, 0}, {0, POLLIN, 0}};
            int ready = poll(fds, 2, idle ? 50 : 0);
            if (ready > 0 && (fds[1].revents & (POLLIN | POLLHUP))) {
                char probe;
                if (read(0, &probe, 1) <= 0) break;       // the parent went away
            }
            if (ready > 0 && (fds[0].revents & POLLIN)) {
                unsigned char buffer[4096];
                ssize_t count = read(fd, buffer, sizeof buffer);
                for (ssize_t k = 0; k < count; k++, received++)
                    if (received != drop) pending.push_back(buffer[k]);
            }
            if (idle) continue;
        }
        if (rx_bits == 0 && !pending.empty()) {
            unsigned char byte = pending.front();
            pending.pop_front();
            rx_frame = (byte << 1) | (1 << 9);          // start 0, data LSB first, stop 1
            rx_bits = 10;
            rx_timer = divisor;
            // A request ends with an END byte after payload bytes.
            if (byte == 0xC0 && in_frame) {
                requests++;
                in_frame = false;
                request_end = cycle + 10 * divisor;
                waiting = true;
            } else if (byte != 0xC0) {
                in_frame = true;
            }
        }
        if (rx_bits) {
            top.rx = rx_frame & 1;
            if (--rx_timer == 0) {
                rx_frame >>= 1;
                rx_bits--;
                rx_timer = divisor;
            }
            quiet = 0;
        } else {
            top.rx = 1;
        }
        tick();
        int tx = top.tx;
        if (tx_state < 0) {
            if (!tx) {
                tx_state = 0;
                tx_timer = divisor / 2;
                if (waiting) {
                    latency += cycle - request_end;
                    waiting = false;
                }
            }
        } else if (--tx_timer == 0) {
            tx_timer = divisor;
            if (tx_state == 0) {
                tx_byte = 0;
            } else if (tx_state <= 8) {
                tx_byte |= tx << (tx_state - 1);
            } else {
                unsigned char out = tx_byte;
                if (out == 0xC0) answers++;
                while (write(fd, &out, 1) < 0 && errno == EAGAIN) {
                }
                tx_state = -2;                         // becomes -1 below: wait for idle
            }
            tx_state++;
        }
        quiet = tx ? quiet + 1 : 0;
    }
    fprintf(stderr, "cycles %llu requests %llu answers %llu latency %llu\n", cycle, requests,
            answers / 2, latency);
    return 0;
}
