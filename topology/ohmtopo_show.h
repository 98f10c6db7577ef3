/* ohmtopo_show: `ohmtopo show --json FILE`, a topology as one JSON object for
 * scripts and the launcher, so that nothing outside the C parser reads the
 * topology format. */
#ifndef OHMTOPO_SHOW_H
#define OHMTOPO_SHOW_H

/* Runs `ohmtopo show` (argv[1] is "show"); returns the exit status: 0 printed,
 * 1 the file is invalid or unreadable, 2 usage. */
int ohmtopo_show(int argc, char **argv);

#endif
