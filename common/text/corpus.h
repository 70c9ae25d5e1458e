/* corpus: reads text from whatever a user has into records.
 *
 * Everything goes through libarchive: an archive in any format it reads (tar,
 * zip, 7z, cpio, ar, iso, ...) under any compression (gzip, bzip2, xz, zstd,
 * lz4, ...), a single compressed file (libarchive "raw" format, e.g.
 * notes.txt.gz), a plain file (also read as raw), a directory (walked
 * recursively in strcmp order of entry names) or "-" for stdin. Only regular
 * archive entries are read; directories, symlinks and devices are skipped.
 *
 * Each member is streamed in blocks and cut into records by a record_spec;
 * only the current record is buffered, so a member larger than memory is fine
 * as long as each record fits. A record's identity is (source, member, index)
 * plus an XXH3-64 hash of its bytes; the same input gives the same records in
 * the same order.
 *
 * Members inside an archive that are themselves compressed or archives (a tar
 * of .gz man pages, a zip of .bz2 files, a tar inside a zip, up to 8 levels)
 * are read whole into memory (at most CORPUS_MAX_RECORD - 1 bytes) and opened
 * like a file of their own, so they give the same records as the same files
 * in a directory. Decided by content (libarchive's detection on the first
 * 64 KiB) and by name: a member named like a compressed file or an archive
 * is always opened so. A nested member's name is the outer member's path,
 * "/", then its own path ("docs.zip/a.txt"); a compressed member keeps its
 * own name ("man1/ls.1.gz").
 *
 * Not what its name says: a file or member whose name ends in a compression
 * (.gz .bz2 .xz .lzma .lz .zst .lz4 .Z) or archive suffix (.tar .tgz .tbz2
 * .txz .tzst .zip .7z .cpio .iso) that libarchive does not find in it is an
 * error ("x.tar.gz: not a gzip file (its name says it is)").
 *
 * Not text: a member (after decompression) whose first 64 KiB hold a NUL
 * byte, or in which more than a quarter of the bytes are control characters
 * (other than bell, backspace, tab, line feed, vertical tab, form feed,
 * carriage return and escape) or not part of a well-formed UTF-8 sequence,
 * is an error naming the file and member, unless record_spec.allow_binary.
 * Some invalid UTF-8 in mostly-text (Latin-1, damaged files) is fine: the
 * tokenizers are byte-level.
 *
 * Record modes (all byte-exact apart from the stated separators):
 *   file       the whole member is one record.
 *   line       records are separated by "\n"; one "\r" right before the "\n"
 *              (or at the end of the member) is dropped, so CRLF text gives the
 *              same records as LF text.
 *   paragraph  records are separated by one or more blank lines (a line that is
 *              empty or holds only " \t\r\v\f"); the record excludes the blank
 *              lines and its final line ending ("\n" or "\r\n"); other line
 *              endings inside it are kept as they are.
 *   fortune    records are separated by a line holding only "%" ("%\r" too);
 *              the record excludes that line and the line ending before it
 *              (as at the end of the member); the rest is kept as it is.
 *   jsonl:F    each line that is not blank is a JSON object whose member F is
 *              a string; the record is that string with escapes decoded (UTF-8,
 *              "\u0000" allowed). Lines are "\n" separated (a "\r" before the
 *              "\n" is JSON whitespace).
 *              A malformed line or a missing / non-string F is an error naming
 *              source, member and 1-based line number.
 * A record of length 0 is never delivered; in fortune mode a record holding
 * only whitespace is not delivered either (in paragraph mode it cannot occur),
 * while in line and jsonl mode a whitespace-only record is delivered. The
 * index counts delivered records of the member only, from 0.
 *
 * A record (in file mode: a member) may hold at most CORPUS_MAX_RECORD - 1
 * bytes; a longer one is an error, which also bounds decompression bombs.
 *
 * Formats: every reader libarchive has except mtree (an mtree file names files
 * on the local disk whose contents it would read); filters: gzip, bzip2, xz,
 * lzma, lzip, zstd, lz4, compress (the ones built into the library; filters
 * that run an external program are not enabled). A directory walk reads every
 * entry, hidden ones too; it follows symlinks to files but not to directories
 * (so it cannot loop) and skips other file types.
 *
 * Known limits of libarchive 3.6: a 7z needs seeking, so a 7z under an outer
 * compression or on a pipe cannot be read (an error; libarchive may give no
 * reason); a zip under an outer compression or on a pipe goes to the streaming
 * zip reader, which sees symlinks as files holding the link target; the gzip
 * CRC is not checked, so flipped bits inside gzip data may decode to wrong
 * text without an error (zip, bzip2, xz, lzip, zstd framing errors are found).
 * Damage detected by a checksum at the end of a block or member is reported
 * after the records of that block were delivered. */
#ifndef W2S_CORPUS_H
#define W2S_CORPUS_H

#include <stddef.h>
#include <stdint.h>

/* Size limit of one record's buffer (see above). */
#define CORPUS_MAX_RECORD ((size_t)256 << 20)

typedef enum { RECORDS_FILE, RECORDS_LINE, RECORDS_PARAGRAPH, RECORDS_FORTUNE, RECORDS_JSONL } record_mode;
typedef struct record_spec {
    record_mode mode;
    char field[128];        /* for jsonl */
    int allow_binary;       /* 1: read members that do not look like text (see above) */
} record_spec;

/* Parses "file", "line", "paragraph", "fortune" or "jsonl:FIELD" (FIELD
 * non-empty, at most 127 bytes) into *spec (allow_binary 0).
 * @return 0, or -1 + message. */
int corpus_parse_mode(const char *text, record_spec *spec);

typedef struct corpus_record {
    const char *source;     /* the path given (file, archive, directory entry) or "-" */
    const char *member;     /* member path inside an archive, "" for a plain/raw file */
    uint64_t index;         /* 0-based record index within the member */
    uint64_t hash;          /* XXH3-64 of the record bytes */
    const unsigned char *data; size_t len;  /* valid only during the callback */
} corpus_record;

/* Called per record in a stable order; return 0 to go on, -1 to stop (error set). */
typedef int (*corpus_record_fn)(void *ctx, const corpus_record *rec);

/* Reads path (file, archive in any libarchive format/compression, directory
 * walked in sorted order, "-" = stdin) and calls fn for each non-empty record.
 * @return 0 when everything was read; -1 + message naming the archive (and the
 * member when known) and libarchive's reason on a missing, unreadable, corrupt
 * or truncated input (records before the damage have been delivered). When fn
 * returns -1, reading stops and -1 is returned with fn's message untouched. */
int corpus_read(const char *path, const record_spec *spec, corpus_record_fn fn, void *ctx);

/* As corpus_read, for the len bytes at data holding one file (an archive, a
 * compressed file or plain text) as if read from a file named name (which
 * becomes rec->source). Used by tests and fuzzers. @return as corpus_read. */
int corpus_read_memory(const char *name, const void *data, size_t len,
                       const record_spec *spec, corpus_record_fn fn, void *ctx);

#endif
