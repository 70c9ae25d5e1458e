/* split: `distill split`, the deterministic corpus split of the default
 * experiment (README, "The default experiment"). Each record goes to one
 * named part by its content hash, so the same record always lands in the same
 * part whatever else the corpus holds. Every part is a tar archive with one
 * member per record, so train and distill read it back to the exact same
 * records in their default mode (`--records file`), whatever the records hold:
 * a text format with separators (fortune's "%" lines) would need the same
 * `--records` option on every later command and could not hold a record that
 * contains its separator. */
#include "split.h"

#include "base/cli.h"
#include "text/corpus.h"
#include "base/err.h"
#include "base/output_path.h"
#include "base/fileio.h"
#include "base/mem.h"

#include <archive.h>
#include <archive_entry.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPLIT_MAX_PARTS 16
/* Hash buckets per 100%: fractions are honoured to 1e-4 percent. */
#define SPLIT_RESOLUTION 1000000ULL

typedef struct split_part {
    char name[64];
    double percent;
    unsigned long long upper;  /* bucket bound (exclusive), cumulative */
    atomic_file out;
    struct archive *tar;       /* writes into out */
    unsigned long long records, bytes;
} split_part;

typedef struct split_job {
    split_part parts[SPLIT_MAX_PARTS];
    int n_parts;
    unsigned long long skipped_blank;
} split_job;

static void split_usage(void)
{
    printf("usage: distill split --input PATH... --out DIR --parts NAME:PCT,... [--records MODE]\n"
           "\n"
           "Splits records deterministically by content hash into named parts and writes\n"
           "each as DIR/NAME.tar, one member per record (00000000.txt, 00000001.txt, ...\n"
           "in input order), so train and distill read the parts back to the same records\n"
           "with their default --records file, whatever the records hold.\n"
           "\n"
           "  --input PATH      file, archive, directory or - (repeatable)\n"
           "  --records MODE    how the inputs are cut: file|line|paragraph|fortune|\n"
           "                    jsonl:FIELD (default fortune)\n"
           "  --allow-binary    read inputs that do not look like text (see distill --help)\n"
           "  --out DIR         existing directory for the parts\n"
           "  --parts SPEC      e.g. gt:4.5,heldout:0.5,test:10,unlabeled:85 (sums to 100)\n"
           "  --quiet           no summary on stderr\n"
           "  -h, --help        this help\n");
}

static int split_parse_parts(const char *spec, split_job *job)
{
    char *copy = mem_strdup(spec);
    if (!copy)
        return -1;
    double total = 0;
    int rc = -1;
    for (char *save = NULL, *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(item, ':');
        if (!colon || colon == item || (size_t)(colon - item) >= sizeof job->parts[0].name ||
            job->n_parts == SPLIT_MAX_PARTS) {
            err_set("--parts: '%s' is not NAME:PERCENT (at most %d parts)", item, SPLIT_MAX_PARTS);
            goto done;
        }
        *colon = '\0';
        split_part *part = &job->parts[job->n_parts++];
        snprintf(part->name, sizeof part->name, "%s", item);
        if (strchr(part->name, '/')) {
            err_set("--parts: part name '%s' must not contain '/'", part->name);
            goto done;
        }
        if (cli_parse_double("--parts", colon + 1, 0, 100, &part->percent) < 0)
            goto done;
        total += part->percent;
        part->upper = (unsigned long long)(total / 100.0 * (double)SPLIT_RESOLUTION + 0.5);
    }
    if (job->n_parts == 0 || total < 99.9999 || total > 100.0001) {
        err_set("--parts: percentages must sum to 100 (got %g)", total);
        goto done;
    }
    job->parts[job->n_parts - 1].upper = SPLIT_RESOLUTION;
    rc = 0;
done:
    free(copy);
    return rc;
}

static int split_is_blank(const unsigned char *data, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!strchr(" \t\r\n\v\f", data[i]))
            return 0;
    return 1;
}

static la_ssize_t split_tar_write(struct archive *a, void *ctx, const void *data, size_t len)
{
    (void)a;
    return atomic_file_write(ctx, data, len) < 0 ? -1 : (la_ssize_t)len;
}

/* Starts part's tar (ustar: short names, no extended headers) in its atomic file. */
static int split_tar_open(split_part *part, const char *path)
{
    TRY(atomic_file_open(&part->out, path));
    part->tar = archive_write_new();
    if (!part->tar)
        return err_set("%s: cannot create a tar writer (out of memory)", path);
    if (archive_write_set_format_ustar(part->tar) != ARCHIVE_OK ||
        archive_write_open(part->tar, &part->out, NULL, split_tar_write, NULL) != ARCHIVE_OK)
        return err_set("%s: %s", path, archive_error_string(part->tar));
    return 0;
}

/* One record as the next member; the header holds nothing but the name, the
 * size and fixed metadata, so a part's bytes depend only on its records. */
static int split_write_member(split_part *part, const void *data, size_t len)
{
    char name[32];
    snprintf(name, sizeof name, "%08llu.txt", part->records);
    struct archive_entry *e = archive_entry_new();
    if (!e)
        return err_set("%s: out of memory", part->out.path);
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, (la_int64_t)len);
    int ok = archive_write_header(part->tar, e) == ARCHIVE_OK &&
             archive_write_data(part->tar, data, len) == (la_ssize_t)len;
    archive_entry_free(e);
    if (!ok)
        return err_set("%s: %s", part->out.path, archive_error_string(part->tar));
    return 0;
}

/* Finishes the tar and commits the file; or, when abandoning, removes it
 * without writing anything more (the error that stopped the split stays). */
static int split_tar_close(split_part *part, int commit)
{
    int rc = 0;
    /* Closed even when discarded: archive_write_fail would skip the close,
     * and libarchive then never frees its block buffer. What the close
     * writes goes to the temporary file, removed below. */
    if (part->tar && archive_write_close(part->tar) != ARCHIVE_OK && commit)
        rc = err_set("%s: %s", part->out.path, archive_error_string(part->tar));
    archive_write_free(part->tar);
    part->tar = NULL;
    if (commit && rc == 0)
        return atomic_file_commit(&part->out);
    atomic_file_abort(&part->out);
    return rc;
}

static int split_record(void *ctx, const corpus_record *rec)
{
    split_job *job = ctx;
    if (split_is_blank(rec->data, rec->len)) {
        job->skipped_blank++;
        return 0;
    }
    unsigned long long bucket = (rec->hash >> 11) % SPLIT_RESOLUTION;
    split_part *part = job->parts;
    while (bucket >= part->upper)
        part++;
    TRY(split_write_member(part, rec->data, rec->len));
    part->records++;
    part->bytes += rec->len;
    return 0;
}

/* 1 when path looks like a part split writes: a ustar archive whose first
 * member is "00000000.txt" (an empty file, which any output may replace, is
 * taken care of by output_path_check). */
static int split_part_is_ours(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return err_errno(path, "cannot open to check what it is");
    unsigned char head[263];
    int ours = fread(head, 1, sizeof head, fp) == sizeof head &&
               memcmp(head, "00000000.txt", 13) == 0 && memcmp(head + 257, "ustar", 5) == 0;
    fclose(fp);
    return ours;
}

/* Refuses a part path that is one of the inputs or a file split did not write. */
static int split_check_part(const char *path, const char *const *inputs, int n_inputs)
{
    for (int i = 0; i < n_inputs; i++)
        TRY(output_path_distinct(path, "a part of --out", inputs[i], "--input"));
    return output_path_check(path, "part written by distill split", split_part_is_ours);
}

int distill_split_main(int argc, char **argv)
{
    static const struct option options[] = {
        {"input", required_argument, NULL, 'i'}, {"records", required_argument, NULL, 'r'},
        {"out", required_argument, NULL, 'o'},   {"parts", required_argument, NULL, 'p'},
        {"quiet", no_argument, NULL, 'q'},       {"help", no_argument, NULL, 'h'},
        {"allow-binary", no_argument, NULL, 'b'},
        {NULL, 0, NULL, 0},
    };
    const char *prog = "distill split";
    const char *inputs[256];
    int n_inputs = 0, quiet = 0, allow_binary = 0;
    const char *out_dir = NULL, *parts = NULL;
    record_spec spec;
    corpus_parse_mode("fortune", &spec);
    split_job job;
    memset(&job, 0, sizeof job);
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (c) {
        case 'i':
            if (n_inputs == (int)(sizeof inputs / sizeof *inputs))
                cli_die(prog, EXIT_USAGE, "too many --input paths");
            inputs[n_inputs++] = optarg;
            break;
        case 'b': allow_binary = 1; break;
        case 'r':
            if (corpus_parse_mode(optarg, &spec) < 0)
                cli_die(prog, EXIT_USAGE, err_message());
            break;
        case 'o': out_dir = optarg; break;
        case 'p': parts = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': split_usage(); return 0;
        default:
            fprintf(stderr, "%s: unknown or incomplete option '%s' (see --help)\n", prog, argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", prog, argv[optind]);
        return EXIT_USAGE;
    }
    spec.allow_binary = allow_binary;
    if (!n_inputs || !out_dir || !parts)
        cli_die(prog, EXIT_USAGE, "--input, --out and --parts are required (see --help)");
    if (split_parse_parts(parts, &job) < 0)
        cli_die(prog, EXIT_USAGE, err_message());

    int opened = 0, rc = 1;
    for (; opened < job.n_parts; opened++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.tar", out_dir, job.parts[opened].name);
        if (split_check_part(path, inputs, n_inputs) < 0 ||
            split_tar_open(&job.parts[opened], path) < 0) {
            split_tar_close(&job.parts[opened], 0);
            goto fail;
        }
    }
    for (int i = 0; i < n_inputs; i++)
        if (corpus_read(inputs[i], &spec, split_record, &job) < 0)
            goto fail;
    unsigned long long total = 0;
    for (int i = 0; i < job.n_parts; i++)
        total += job.parts[i].records;
    if (total == 0) {
        err_set("%s: no records found (empty corpus)", inputs[0]);
        goto fail;
    }
    for (int i = 0; i < job.n_parts; i++) {
        if (split_tar_close(&job.parts[i], 1) < 0) {
            for (int j = i + 1; j < job.n_parts; j++)
                split_tar_close(&job.parts[j], 0);
            fprintf(stderr, "%s: %s\n", prog, err_message());
            return 1;
        }
        if (!quiet)
            fprintf(stderr, "%s: %-12s %8llu records %10llu bytes\n", prog, job.parts[i].name,
                    job.parts[i].records, job.parts[i].bytes);
    }
    if (!quiet && job.skipped_blank)
        fprintf(stderr, "%s: %llu whitespace-only records left out\n", prog, job.skipped_blank);
    return 0;
fail:
    fprintf(stderr, "%s: %s\n", prog, err_message());
    for (int i = 0; i < opened; i++)
        split_tar_close(&job.parts[i], 0);
    return rc;
}
