/* softlabel_ext: the SQL functions and the `topk` table of the SQLite
 * extension (softlabel_ext.c), for a connection a program opened itself.
 *
 * The same source file is built twice: as the loadable extension
 * build/softlabel.so (entry point sqlite3_softlabel_init, reaching SQLite
 * through the sqlite3_api routines), and into the library with SQLITE_CORE
 * defined, where softlabel_ext_register calls SQLite directly. So a
 * `train --labels-where` condition can use topk_entropy, detokenize, ... just
 * as a query in the sqlite3 shell after `.load build/softlabel.so`. */
#ifndef W2S_SOFTLABEL_EXT_H
#define W2S_SOFTLABEL_EXT_H

#include <sqlite3.h>

/* Registers topk, topk_json, topk_entropy, topk_kind and detokenize on db
 * (once per connection; the state is freed when db closes).
 * @return SQLITE_OK, or an SQLite code with *err_msg (free with sqlite3_free). */
int softlabel_ext_register(sqlite3 *db, char **err_msg);

#endif
