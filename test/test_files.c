/* Files: what saving does with a symbolic link, a directory, a device or a
 * FIFO; the mode of a saved file; temporaries left by a killed save; and
 * readers given something that is not a regular file (refused at once,
 * never waited on). White box for the edges of src/io/file.c. */

#define _XOPEN_SOURCE 700 /* mknod */
#define _DEFAULT_SOURCE   /* setgroups */

#include "tc.h"

#include <dirent.h>
#include <grp.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../src/io/file.h" /* white box: the helper itself */

/* ------------------------------------------------------------- fixtures */

typedef struct dir {
    char path[64];
    char file[96]; /* path/model.ckpt */
} dir;

static int setup_dir(void **state)
{
    dir *d = calloc(1, sizeof *d);
    if (!d)
        return -1;
    strcpy(d->path, "/tmp/nabla-files-XXXXXX");
    if (!mkdtemp(d->path)) {
        free(d);
        return -1;
    }
    snprintf(d->file, sizeof d->file, "%s/model.ckpt", d->path);
    *state = d;
    return 0;
}

/* Remove path and everything under it (symbolic links not followed). */
static void remove_tree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return;
    if (S_ISDIR(sb.st_mode)) {
        DIR *dd = opendir(path);
        struct dirent *e;
        char p[1024];
        while (dd && (e = readdir(dd)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(p, sizeof p, "%s/%s", path, e->d_name);
                remove_tree(p);
            }
        if (dd)
            closedir(dd);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int teardown_dir(void **state)
{
    dir *d = *state;
    remove_tree(d->path);
    free(d);
    return 0;
}

/* d->path/name into buf. */
static const char *in(const dir *d, const char *name, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", d->path, name);
    return buf;
}

/* A small model whose values come from @p seed. */
static nb_model *small_model(double seed)
{
    nb_model *m = nb_model_new();
    nb_tensor *w = NULL;
    assert_int_equal(nb_model_add(m, "w", NB_F32, 1, (int64_t[]){3}, &w), NB_OK);
    for (int i = 0; i < 3; i++)
        nb_tensor_set(w, i, seed + i);
    return m;
}

/* The value of w[0] in the checkpoint at path. */
static double first_value(const char *path)
{
    nb_model *m = small_model(0);
    nb_error err;
    if (nb_model_load(m, NULL, path, NULL, &err) != NB_OK)
        fail_msg("%s", err.msg);
    double v = nb_tensor_get(nb_model_get(m, "w"), 0);
    nb_model_free(m);
    return v;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static mode_t type_of(const char *path)
{
    struct stat sb;
    assert_int_equal(lstat(path, &sb), 0);
    return sb.st_mode & S_IFMT;
}

/* Names in d->path that start with @p prefix and are @p len bytes long. */
static int count_named(const dir *d, const char *prefix, size_t len)
{
    DIR *dd = opendir(d->path);
    assert_non_null(dd);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dd)))
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0 && strlen(e->d_name) == len;
    closedir(dd);
    return n;
}

/* ------------------------------------------------------ saving: kinds */

/* A symbolic link's target is replaced; the link stays a link. */
static void test_save_follows_symlinks(void **state)
{
    dir *d = *state;
    char real[128], link1[128], link2[128], dangling[128], created[128];
    nb_model *m1 = small_model(1), *m2 = small_model(2);
    in(d, "real.ckpt", real, sizeof real);
    assert_int_equal(nb_model_save(m1, NULL, real, NULL, NULL), NB_OK);
    /* link2 -> link1 -> real.ckpt, both relative */
    assert_int_equal(symlink("real.ckpt", in(d, "link1", link1, sizeof link1)), 0);
    assert_int_equal(symlink("link1", in(d, "link2", link2, sizeof link2)), 0);
    nb_error err;
    if (nb_model_save(m2, NULL, link2, NULL, &err) != NB_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(type_of(link2), S_IFLNK);
    assert_int_equal(type_of(link1), S_IFLNK);
    assert_int_equal(type_of(real), S_IFREG);
    assert_true(first_value(real) == 2);
    /* the same through safetensors, with an absolute link in a subdirectory */
    char sub[128], st_real[128], st_link[160];
    assert_int_equal(mkdir(in(d, "sub", sub, sizeof sub), 0755), 0);
    in(d, "sub/w.safetensors", st_real, sizeof st_real);
    assert_int_equal(nb_model_save_safetensors(m1, st_real, NULL, NULL), NB_OK);
    in(d, "w.safetensors", st_link, sizeof st_link);
    assert_int_equal(symlink(st_real, st_link), 0);
    assert_int_equal(nb_model_save_safetensors(m2, st_link, NULL, &err), NB_OK);
    assert_int_equal(type_of(st_link), S_IFLNK);
    nb_model *back = small_model(0);
    assert_int_equal(nb_model_load_safetensors(back, st_real, NULL, &err), NB_OK);
    assert_true(nb_tensor_get(nb_model_get(back, "w"), 0) == 2);
    nb_model_free(back);
    /* a dangling link: the file it names is created */
    assert_int_equal(symlink("created.ckpt", in(d, "dangling", dangling, sizeof dangling)), 0);
    assert_int_equal(nb_model_save(m1, NULL, dangling, NULL, &err), NB_OK);
    assert_int_equal(type_of(dangling), S_IFLNK);
    assert_int_equal(type_of(in(d, "created.ckpt", created, sizeof created)), S_IFREG);
    assert_true(first_value(dangling) == 1);
    /* a loop of links is refused */
    char a[128], b[128];
    assert_int_equal(symlink("loop-b", in(d, "loop-a", a, sizeof a)), 0);
    assert_int_equal(symlink("loop-a", in(d, "loop-b", b, sizeof b)), 0);
    assert_int_equal(nb_model_save(m1, NULL, a, NULL, &err), NB_ERR_IO);
    assert_non_null(strstr(err.msg, strerror(ELOOP)));
    assert_int_equal(type_of(a), S_IFLNK);
    nb_model_free(m1);
    nb_model_free(m2);
}

/* A directory is refused and stays a directory; so is a FIFO with no
 * reader (at once), a socket-like special file, and nothing is left. */
static void test_save_refuses_directory_and_unread_fifo(void **state)
{
    dir *d = *state;
    char sub[128], fifo[128];
    nb_model *m = small_model(1);
    nb_error err;
    assert_int_equal(mkdir(in(d, "adir.ckpt", sub, sizeof sub), 0755), 0);
    assert_int_equal(nb_model_save(m, NULL, sub, NULL, &err), NB_ERR_IO);
    assert_non_null(strstr(err.msg, "is a directory"));
    assert_non_null(strstr(err.msg, sub));
    assert_int_equal(type_of(sub), S_IFDIR);
    assert_int_equal(nb_model_save_safetensors(m, sub, NULL, &err), NB_ERR_IO);
    assert_non_null(strstr(err.msg, "is a directory"));
    assert_int_equal(type_of(sub), S_IFDIR);

    assert_int_equal(mkfifo(in(d, "fifo", fifo, sizeof fifo), 0644), 0);
    alarm(20); /* a save that waits for a reader fails the test instead of hanging */
    assert_int_equal(nb_model_save(m, NULL, fifo, NULL, &err), NB_ERR_IO);
    alarm(0);
    assert_non_null(strstr(err.msg, "is a FIFO with no reader"));
    assert_int_equal(type_of(fifo), S_IFIFO);
    assert_int_equal(count_named(d, "fifo.nabla-tmp-", 21), 0);
    assert_int_equal(count_named(d, "adir.ckpt.nabla-tmp-", 26), 0);
    nb_model_free(m);
}

/* nbio_out_check says whether a path could be written, and writes nothing:
 * no file, no temporary, a FIFO not opened. */
static void test_out_check(void **state)
{
    dir *d = *state;
    char sub[128], fifo[128], path[160], why[512];
    assert_int_equal(nbio_out_check(d->file, why, sizeof why), NB_OK);
    struct stat sb;
    assert_int_equal(lstat(d->file, &sb), -1); /* still nothing there */
    assert_int_equal(count_named(d, "model.ckpt.nabla-tmp-", 27), 0);
    assert_int_equal(mkdir(in(d, "adir", sub, sizeof sub), 0755), 0);
    assert_int_equal(nbio_out_check(sub, why, sizeof why), NB_ERR_IO);
    assert_non_null(strstr(why, "is a directory"));
    snprintf(path, sizeof path, "%s/none/m.ckpt", d->path);
    assert_int_equal(nbio_out_check(path, why, sizeof why), NB_ERR_IO);
    assert_non_null(strstr(why, "cannot create the temporary file"));
    assert_int_equal(nbio_out_check("", why, sizeof why), NB_ERR_IO);
    assert_int_equal(mkfifo(in(d, "fifo", fifo, sizeof fifo), 0644), 0);
    alarm(20);
    assert_int_equal(nbio_out_check(fifo, why, sizeof why), NB_OK); /* checked when written */
    assert_int_equal(nbio_out_check("/dev/null", why, sizeof why), NB_OK);
    alarm(0);
    assert_int_equal(type_of(fifo), S_IFIFO);
}

/* A character device is written in place (never replaced by a regular
 * file), and so is a FIFO that has a reader: the reader gets the bytes. */
static void test_save_writes_devices_and_fifos_in_place(void **state)
{
    dir *d = *state;
    char null_link[128], dev[128], fifo[128];
    nb_model *m = small_model(3);
    nb_error err;
    assert_int_equal(symlink("/dev/null", in(d, "null", null_link, sizeof null_link)), 0);
    if (nb_model_save(m, NULL, null_link, NULL, &err) != NB_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(type_of(null_link), S_IFLNK);
    assert_int_equal(type_of("/dev/null"), S_IFCHR);
    if (mknod(in(d, "dev-null", dev, sizeof dev), S_IFCHR | 0666, makedev(1, 3)) == 0) {
        /* root may make devices: the device itself stays one */
        assert_int_equal(nb_model_save(m, NULL, dev, NULL, &err), NB_OK);
        assert_int_equal(type_of(dev), S_IFCHR);
        assert_int_equal(nb_model_save_safetensors(m, dev, NULL, &err), NB_OK);
        assert_int_equal(type_of(dev), S_IFCHR);
    }
    /* loading from a character device is refused */
    assert_int_equal(nb_model_load(m, NULL, null_link, NULL, &err), NB_ERR_IO);
    assert_non_null(strstr(err.msg, "is a character device"));

    /* the same bytes a regular save writes, through a FIFO with a reader */
    assert_int_equal(nb_model_save(m, NULL, d->file, NULL, NULL), NB_OK);
    FILE *f = fopen(d->file, "rb");
    unsigned char want[4096], got[4096];
    size_t n_want = fread(want, 1, sizeof want, f);
    fclose(f);
    assert_true(n_want > 28 && n_want < sizeof want); /* fits a pipe's buffer */
    assert_int_equal(mkfifo(in(d, "fifo", fifo, sizeof fifo), 0644), 0);
    int rd = open(fifo, O_RDONLY | O_NONBLOCK);
    assert_true(rd >= 0);
    alarm(20);
    if (nb_model_save(m, NULL, fifo, NULL, &err) != NB_OK)
        fail_msg("%s", err.msg);
    alarm(0);
    ssize_t k = read(rd, got, sizeof got);
    close(rd);
    assert_int_equal(k, (ssize_t)n_want);
    assert_memory_equal(got, want, n_want);
    assert_int_equal(type_of(fifo), S_IFIFO);
    nb_model_free(m);
}

/* ------------------------------------------------------- saving: mode */

static mode_t mode_of(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return sb.st_mode & 07777;
}

/* An existing file keeps its mode (and, for root, its owner); a new one
 * gets 0666 less the umask. */
static void test_save_keeps_mode_and_honours_umask(void **state)
{
    dir *d = *state;
    nb_model *m = small_model(1);
    nb_error err;
    assert_int_equal(nb_model_save(m, NULL, d->file, NULL, NULL), NB_OK);
    const mode_t modes[] = {0600, 0640, 0444, 0755};
    for (int k = 0; k < 4; k++) {
        assert_int_equal(chmod(d->file, modes[k]), 0);
        if (nb_model_save(m, NULL, d->file, NULL, &err) != NB_OK)
            fail_msg("%s", err.msg);
        assert_int_equal(mode_of(d->file), modes[k]);
    }
    char st[128];
    in(d, "w.safetensors", st, sizeof st);
    assert_int_equal(nb_model_save_safetensors(m, st, NULL, NULL), NB_OK);
    assert_int_equal(chmod(st, 0600), 0);
    assert_int_equal(nb_model_save_safetensors(m, st, NULL, NULL), NB_OK);
    assert_int_equal(mode_of(st), 0600);

    const mode_t masks[] = {077, 022, 0, 027};
    mode_t old = umask(0);
    for (int k = 0; k < 4; k++) {
        char path[128];
        snprintf(path, sizeof path, "%s/new%d.ckpt", d->path, k);
        umask(masks[k]);
        assert_int_equal(nb_model_save(m, NULL, path, NULL, NULL), NB_OK);
        assert_int_equal(mode_of(path), 0666 & ~masks[k]);
    }
    umask(old);

    if (geteuid() == 0) { /* root keeps another user's file theirs */
        assert_int_equal(chown(d->file, 4321, 4322), 0);
        assert_int_equal(nb_model_save(m, NULL, d->file, NULL, NULL), NB_OK);
        struct stat sb;
        assert_int_equal(stat(d->file, &sb), 0);
        assert_int_equal(sb.st_uid, 4321);
        assert_int_equal(sb.st_gid, 4322);
    }
    nb_model_free(m);
}

/* ------------------------------------------------ saving: temporaries */

/* A write function that is killed part-way, as by the OOM killer. */
static size_t killed_write(void *ud, FILE *f, const void *data, size_t n)
{
    (void)ud;
    fwrite(data, 1, n / 2, f);
    fflush(f);
    kill(getpid(), SIGKILL);
    return 0;
}

static void set_mtime(const char *path, time_t when)
{
    struct timespec t[2] = {{when, 0}, {when, 0}};
    assert_int_equal(utimensat(AT_FDCWD, path, t, AT_SYMLINK_NOFOLLOW), 0);
}

/* A killed save leaves a temporary with a recognisable name; the next
 * successful save of the same file removes it and other stale ones, and
 * leaves everything else alone. */
static void test_killed_save_temporaries_removed(void **state)
{
    dir *d = *state;
    nb_model *m1 = small_model(1), *m2 = small_model(2);
    assert_int_equal(nb_model_save(m1, NULL, d->file, NULL, NULL), NB_OK);
    const char *tmp_prefix = "model.ckpt.nabla-tmp-";
    size_t tmp_len = strlen(tmp_prefix) + 6;
    for (int kill_no = 1; kill_no <= 3; kill_no++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            nb_ckpt_opts co = {.write = killed_write};
            nb_model_save(m2, NULL, d->file, &co, NULL);
            _exit(0);
        }
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        assert_int_equal(count_named(d, tmp_prefix, tmp_len), kill_no);
    }
    assert_true(first_value(d->file) == 1); /* the killed saves changed nothing */

    char p[160];
    time_t now = time(NULL);
    /* a stale temporary from long ago */
    write_text(in(d, "model.ckpt.nabla-tmp-Ab3dE9", p, sizeof p), "stale");
    set_mtime(p, now - 3600);
    /* files that only look like temporaries, or are not regular files */
    const char *keep[] = {
        "model.ckpt.nabla-tmp-Ab3dE",   /* five characters */
        "model.ckpt.nabla-tmp-Ab3dE9x", /* seven */
        "model.ckpt.nabla-tmp-Ab_dE9",  /* not a letter or digit */
        "other.ckpt.nabla-tmp-Ab3dE9",  /* another file's */
        "model.ckpt.Ab3dE9",            /* a user's file with mkstemp's shape */
        "xmodel.ckpt.nabla-tmp-Ab3dE9", /* a longer name */
        "model.ckpt.nabla-tmp-",        /* no random part */
    };
    for (size_t k = 0; k < sizeof keep / sizeof keep[0]; k++) {
        write_text(in(d, keep[k], p, sizeof p), "keep");
        set_mtime(p, now - 3600);
    }
    assert_int_equal(mkdir(in(d, "model.ckpt.nabla-tmp-DIR123", p, sizeof p), 0755), 0);
    write_text(in(d, "target.txt", p, sizeof p), "keep");
    assert_int_equal(symlink("target.txt", in(d, "model.ckpt.nabla-tmp-LNK123", p, sizeof p)), 0);
    /* a temporary of a save still writing (modified after ours began) */
    write_text(in(d, "model.ckpt.nabla-tmp-Live99", p, sizeof p), "live");
    set_mtime(p, now + 3600);

    nb_error err;
    if (nb_model_save(m2, NULL, d->file, NULL, &err) != NB_OK)
        fail_msg("%s", err.msg);
    assert_true(first_value(d->file) == 2);
    /* left of that length: the directory, the link, the live one and Ab_dE9 */
    assert_int_equal(count_named(d, tmp_prefix, tmp_len), 4);
    assert_int_equal(type_of(in(d, "model.ckpt.nabla-tmp-DIR123", p, sizeof p)), S_IFDIR);
    assert_int_equal(type_of(in(d, "model.ckpt.nabla-tmp-LNK123", p, sizeof p)), S_IFLNK);
    assert_int_equal(type_of(in(d, "model.ckpt.nabla-tmp-Live99", p, sizeof p)), S_IFREG);
    assert_int_equal(type_of(in(d, "target.txt", p, sizeof p)), S_IFREG);
    for (size_t k = 0; k < sizeof keep / sizeof keep[0]; k++)
        assert_int_equal(type_of(in(d, keep[k], p, sizeof p)), S_IFREG);
    assert_int_equal(access(in(d, "model.ckpt.nabla-tmp-Ab3dE9", p, sizeof p), F_OK), -1);
    nb_model_free(m1);
    nb_model_free(m2);
}

/* ------------------------------------------------------------ reading */

/* A save that is still writing its temporary keeps it, however old the
 * temporary looks: a stale one is one that no save holds locked. */
static void test_live_temporary_survives(void **state)
{
    dir *d = *state;
    char why[512];
    nbio_out *slow = NULL, *fast = NULL;
    assert_int_equal(nbio_out_open(d->file, NULL, NULL, &slow, why, sizeof why), NB_OK);
    fputs("slow", nbio_out_file(slow));
    fflush(nbio_out_file(slow));
    /* its temporary, made to look as old as a killed save's */
    const char *tmp_prefix = "model.ckpt.nabla-tmp-";
    size_t tmp_len = strlen(tmp_prefix) + 6;
    assert_int_equal(count_named(d, tmp_prefix, tmp_len), 1);
    DIR *dd = opendir(d->path);
    struct dirent *e;
    char p[400];
    while ((e = readdir(dd)))
        if (!strncmp(e->d_name, tmp_prefix, strlen(tmp_prefix)))
            set_mtime(in(d, e->d_name, p, sizeof p), time(NULL) - 3600);
    closedir(dd);
    /* another save of the same file finishes first */
    assert_int_equal(nbio_out_open(d->file, NULL, NULL, &fast, why, sizeof why), NB_OK);
    fputs("fast", nbio_out_file(fast));
    assert_int_equal(nbio_out_commit(fast, 0, why, sizeof why), NB_OK);
    assert_int_equal(count_named(d, tmp_prefix, tmp_len), 1);
    if (nbio_out_commit(slow, 0, why, sizeof why) != NB_OK)
        fail_msg("the slow save lost its temporary: %s", why);
    assert_int_equal(count_named(d, tmp_prefix, tmp_len), 0);
    FILE *f = fopen(d->file, "r");
    char text[8] = {0};
    assert_non_null(f);
    assert_non_null(fgets(text, sizeof text, f));
    fclose(f);
    assert_string_equal(text, "slow");
}

/* Saving over a file of another owner keeps its group when the saver is a
 * member of it, though the owner cannot be kept (run as root: a child
 * takes another user's identity). */
static void test_save_keeps_group(void **state)
{
    dir *d = *state;
    if (geteuid() != 0)
        skip();
    const uid_t owner = 4321, saver = 4322;
    const gid_t group = 4323, own_group = 4324;
    write_text(d->file, "old");
    assert_int_equal(chown(d->file, owner, group), 0);
    assert_int_equal(chmod(d->file, 0660), 0);
    assert_int_equal(chmod(d->path, 0777), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        gid_t groups[1] = {group};
        char why[512];
        nbio_out *o = NULL;
        if (setgroups(1, groups) != 0 || setgid(own_group) != 0 || setuid(saver) != 0)
            _exit(3);
        if (nbio_out_open(d->file, NULL, NULL, &o, why, sizeof why) != NB_OK)
            _exit(4);
        fputs("new", nbio_out_file(o));
        _exit(nbio_out_commit(o, 0, why, sizeof why) == NB_OK ? 0 : 5);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    struct stat sb;
    assert_int_equal(stat(d->file, &sb), 0);
    assert_int_equal(sb.st_uid, saver); /* the owner could not be kept */
    assert_int_equal(sb.st_gid, group); /* the group could */
    assert_int_equal(sb.st_mode & 07777, 0660);
}

/* Every reader refuses a directory, a FIFO (with no writer: at once) and a
 * device, naming the path and what it is; a missing file gives errno's
 * text. */
static void test_readers_refuse_special_files(void **state)
{
    dir *d = *state;
    char sub[128], fifo[128], missing[128], images[160];
    assert_int_equal(mkdir(in(d, "adir.csv", sub, sizeof sub), 0755), 0);
    assert_int_equal(mkfifo(in(d, "fifo.csv", fifo, sizeof fifo), 0644), 0);
    in(d, "missing.csv", missing, sizeof missing);
    const struct {
        const char *path, *what;
    } cases[] = {
        {sub, "is a directory, not a regular file"},
        {fifo, "is a FIFO, not a regular file"},
        {"/dev/null", "is a character device, not a regular file"},
        {missing, strerror(ENOENT)},
    };
    nb_model *m = small_model(0);
    alarm(30); /* a reader that waits on the FIFO fails the test instead of hanging */
    for (int k = 0; k < 4; k++) {
        const char *path = cases[k].path, *what = cases[k].what;
        nb_error err;
        assert_int_equal(nb_model_load(m, NULL, path, NULL, &err), NB_ERR_IO);
        assert_non_null(strstr(err.msg, what));
        assert_non_null(strstr(err.msg, path));
        char meta[64];
        assert_int_equal(nb_ckpt_read_meta(path, meta, sizeof meta, &err), NB_ERR_IO);
        assert_non_null(strstr(err.msg, what));
        assert_int_equal(nb_model_load_safetensors(m, path, NULL, &err), NB_ERR_IO);
        assert_non_null(strstr(err.msg, what));
        assert_int_equal(nb_safetensors_list(path, NULL, NULL, NULL, &err), NB_ERR_IO);
        assert_non_null(strstr(err.msg, what));
        nb_dataset *ds = NULL;
        nb_error de;
        assert_int_equal(nb_dataset_load_csv(path, NULL, &ds, &de), NB_ERR_IO);
        assert_null(ds);
        assert_non_null(strstr(de.msg, what));
        assert_non_null(strstr(de.msg, path));
        assert_int_equal(nb_dataset_load_idx(path, path, NULL, &ds, &de), NB_ERR_IO);
        assert_non_null(strstr(de.msg, what));
    }
    /* Fashion-MNIST's files found in a directory, one of them a FIFO */
    in(d, "train-labels-idx1-ubyte", images, sizeof images);
    assert_int_equal(mkfifo(images, 0644), 0);
    in(d, "train-images-idx3-ubyte", images, sizeof images);
    assert_int_equal(mkdir(images, 0755), 0);
    nb_dataset *ds = NULL;
    nb_error de;
    assert_int_equal(nb_dataset_fashion_mnist(d->path, true, NULL, &ds, &de), NB_ERR_IO);
    assert_non_null(strstr(de.msg, "train-labels-idx1-ubyte is a FIFO"));
    alarm(0);
    nb_model_free(m);
}

/* ------------------------------------------------- the helper's edges */

static void test_helper_edges(void **state)
{
    dir *d = *state;
    char why[512], p[160];
    void *buf = (void *)1;
    size_t len = 7;
    /* an empty file: no block */
    write_text(in(d, "empty", p, sizeof p), "");
    assert_int_equal(nbio_read_all(p, NULL, NULL, &buf, &len, why, sizeof why), NB_OK);
    assert_null(buf);
    assert_int_equal(len, 0);
    /* the block through the hook, and its failure */
    write_text(p, "twelve bytes");
    tc_counting c = {0};
    assert_int_equal(nbio_read_all(p, tc_counting_alloc, &c, &buf, &len, why, sizeof why), NB_OK);
    assert_int_equal(len, 12);
    assert_memory_equal(buf, "twelve bytes", 12);
    tc_counting_alloc(&c, buf, len, 0);
    assert_int_equal(c.live, 0);
    c = (tc_counting){.fail_at = 1};
    assert_int_equal(nbio_read_all(p, tc_counting_alloc, &c, &buf, &len, why, sizeof why),
                     NB_ERR_NOMEM);
    assert_null(buf);
    assert_non_null(strstr(why, "out of memory"));
    assert_non_null(strstr(why, p));

    /* writing: the state's allocation failing leaves nothing behind */
    nbio_out *o = NULL;
    c = (tc_counting){.fail_at = 1};
    assert_int_equal(nbio_out_open(d->file, tc_counting_alloc, &c, &o, why, sizeof why),
                     NB_ERR_NOMEM);
    assert_null(o);
    assert_int_equal(access(d->file, F_OK), -1);
    assert_int_equal(count_named(d, "model.ckpt", strlen("model.ckpt.nabla-tmp-XXXXXX")), 0);
    /* a failed write leaves the old file and no temporary */
    write_text(d->file, "old");
    assert_int_equal(nbio_out_open(d->file, NULL, NULL, &o, why, sizeof why), NB_OK);
    fputs("new", nbio_out_file(o));
    assert_int_equal(count_named(d, "model.ckpt.nabla-tmp-", 27), 1);
    assert_int_equal(nbio_out_commit(o, ENOSPC, why, sizeof why), NB_ERR_IO);
    assert_non_null(strstr(why, strerror(ENOSPC)));
    assert_non_null(strstr(why, "is unchanged"));
    assert_int_equal(count_named(d, "model.ckpt.nabla-tmp-", 27), 0);
    assert_int_equal(nbio_out_commit(NULL, 0, why, sizeof why), NB_OK);
    /* in place, a failure says what was not written */
    assert_int_equal(nbio_out_open("/dev/null", NULL, NULL, &o, why, sizeof why), NB_OK);
    assert_int_equal(nbio_out_commit(o, EIO, why, sizeof why), NB_ERR_IO);
    assert_non_null(strstr(why, "writing /dev/null failed"));
    /* an empty path, a name too long, a missing directory */
    assert_int_equal(nbio_out_open("", NULL, NULL, &o, why, sizeof why), NB_ERR_IO);
    assert_non_null(strstr(why, "path is empty"));
    char longname[400];
    int k = snprintf(longname, sizeof longname, "%s/", d->path);
    memset(longname + k, 'a', 300);
    longname[k + 300] = '\0';
    assert_int_equal(nbio_out_open(longname, NULL, NULL, &o, why, sizeof why), NB_ERR_IO);
    assert_non_null(strstr(why, strerror(ENAMETOOLONG)));
    assert_int_equal(nbio_out_open("/nonexistent-dir/x", NULL, NULL, &o, why, sizeof why),
                     NB_ERR_IO);
    assert_non_null(strstr(why, "cannot create the temporary file /nonexistent-dir/x.nabla-tmp-"));
    /* a name whose temporary's name would be too long for the directory */
    char near[300];
    k = snprintf(near, sizeof near, "%s/", d->path);
    memset(near + k, 'n', 250);
    near[k + 250] = '\0';
    assert_int_equal(nbio_out_open(near, NULL, NULL, &o, why, sizeof why), NB_ERR_IO);
    assert_non_null(strstr(why, "temporary file"));
    assert_non_null(strstr(why, strerror(ENAMETOOLONG)));

    /* relative paths: the temporary and the clean-up in the current directory */
    char cwd[512];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(d->path), 0);
    write_text("rel.nabla-tmp-Zz9Zz9", "stale");
    set_mtime("rel.nabla-tmp-Zz9Zz9", time(NULL) - 60);
    assert_int_equal(nbio_out_open("rel", NULL, NULL, &o, why, sizeof why), NB_OK);
    fputs("relative", nbio_out_file(o));
    assert_int_equal(nbio_out_commit(o, 0, why, sizeof why), NB_OK);
    assert_int_equal(access("rel.nabla-tmp-Zz9Zz9", F_OK), -1);
    assert_int_equal(nbio_read_all("rel", NULL, NULL, &buf, &len, why, sizeof why), NB_OK);
    assert_int_equal(len, 8);
    nb_default_alloc(NULL, buf, len, 0);
    assert_int_equal(chdir(cwd), 0);

    /* a link whose text does not name its file (a deleted file's /proc link) */
    int fd = open(in(d, "deleted", p, sizeof p), O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(unlink(p), 0);
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    struct stat sb;
    if (lstat(proc, &sb) == 0 && S_ISLNK(sb.st_mode)) {
        assert_int_equal(nbio_out_open(proc, NULL, NULL, &o, why, sizeof why), NB_ERR_IO);
        assert_non_null(strstr(why, "cannot follow"));
    }
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_save_follows_symlinks, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_save_refuses_directory_and_unread_fifo, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_save_writes_devices_and_fifos_in_place, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_save_keeps_mode_and_honours_umask, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_killed_save_temporaries_removed, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_readers_refuse_special_files, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_helper_edges, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_out_check, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_live_temporary_survives, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_save_keeps_group, setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
