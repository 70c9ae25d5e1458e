/* Placeholder until the distill program lands. */
#include <stdio.h>
int main(void)
{
    puts("distill: not built yet");
    return 0;
}
