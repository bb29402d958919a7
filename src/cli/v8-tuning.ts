/**
 * V8 set for what the command line is: a process that lives for seconds
 * and runs most of its code once. Imported first by main.ts, so that it is
 * set before any code of reposnap runs.
 *
 * Turbofan, V8's optimizing compiler, inlines the functions a hot function
 * calls into it: a function compiled with all it inlines takes many times
 * the compiling of the function alone. In a long-running program that pays
 * for itself; in a sync it does not. V8 compiles on threads of its own (4,
 * whatever the machine), and on a machine with 2 CPUs those threads took
 * about 300 ms of CPU during the incremental verification of a 1% change
 * of the Gentoo-shaped bench tree, about half of its time, on the CPUs the
 * verification's own thread was waiting for (it waited about 150 ms for
 * one). Without inlining, that verification took 454 ms instead of 514
 * (medians of 8 syncs each, taken in turn), the sync was visible sooner,
 * and a full verification, whose time goes to hashing, was no slower.
 * docs/design.md ("Busy is not running") has the measurements.
 *
 * A program that uses the library runs with its own V8 settings; it can
 * pass --no-turbo-inlining to node for the same effect.
 */
import { setFlagsFromString } from 'node:v8';

// Every Node reposnap supports (20.9 on, 22, 24) knows it.
setFlagsFromString('--no-turbo-inlining');
