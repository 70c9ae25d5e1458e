# Deterministic paragraphs of pseudo-English for the MPI tests: awk -v
# seed=S -v paragraphs=N -f text.awk. A fixed text (not the repository's own
# files, which change with every edit) keeps the tests' trajectories fixed.
# Park-Miller generator: every product is exact in a double, so any awk
# prints the same text.
function rnd() { x = (x * 16807) % 2147483647; return x / 2147483647 }
BEGIN {
    nw = split("the a an model teacher student label token weight layer loss gradient window " \
               "record corpus sample learns predicts stores reads writes trains small large weak " \
               "strong fast slow every each one two of to in on with from by and or but not " \
               "while when after before because data text byte word line rank step batch", w, " ")
    x = seed
    for (p = 0; p < paragraphs; p++) {
        sentences = 2 + int(rnd() * 5)
        for (s = 0; s < sentences; s++) {
            words = 4 + int(rnd() * 9)
            line = ""
            for (i = 0; i < words; i++)
                line = line (i ? " " : "") w[1 + int(rnd() * nw)]
            print toupper(substr(line, 1, 1)) substr(line, 2) "."
        }
        print ""
    }
}
