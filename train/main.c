/* Placeholder until the train program lands. */
#include <stdio.h>
int main(void)
{
    puts("train: not built yet");
    return 0;
}
