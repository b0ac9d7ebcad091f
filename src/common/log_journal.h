#pragma once
// journald's line form for the log facade (log.h), in its own header so that the many files that
// log do not depend on it.
//
// When stderr is connected to the journal (systemd sets JOURNAL_STREAM to "<device>:<inode>" of
// that stream), every line starts with its syslog priority in sd-daemon.h's "<N>" form, which
// journald strips and keeps as the entry's PRIORITY (so `journalctl -p warning` and its colours
// work), and the text format leaves out its own timestamp, since the journal stamps every entry
// (no double timestamps). JSON lines keep their "ts" field. Decided once, when logging starts,
// from JOURNAL_STREAM and stderr's fstat: a child whose stderr is a pipe of its parent's inherits
// the variable but not the match. Thread-safe.

#include <string_view>

#include "common/log.h"

namespace sw::log {

// The prefix for `level`: error "<3>" (SD_ERR), warn "<4>" (SD_WARNING), info "<6>" (SD_INFO),
// debug and trace "<7>" (SD_DEBUG).
std::string_view journal_prefix(Level level);
// Whether `journal_stream` (JOURNAL_STREAM's form: decimal device and inode numbers joined by a
// colon) names the file `fd` is open on. False for a malformed value or a closed fd.
bool journal_stream_names(std::string_view journal_stream, int fd);
// Switches stderr's journal form on or off (tests; the detection above sets it).
void set_journal_output(bool on);
bool journal_output();

}  // namespace sw::log
