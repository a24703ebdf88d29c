/*
 * expertcast.h - the whole public API of expertcast.
 *
 * expertcast predicts, from routing history, which experts the next layers
 * of a Mixture-of-Experts model will pick, prefetches them into a device
 * expert cache, and simulates what that saves on recorded routing traces.
 */
#ifndef EXPERTCAST_H
#define EXPERTCAST_H

#include "expertcast/core.h"
#include "expertcast/trace.h"
#include "expertcast/predict.h"
#include "expertcast/eval.h"
#include "expertcast/seed.h"
#include "expertcast/policy.h"
#include "expertcast/sim.h"
#include "expertcast/backend.h"
#include "expertcast/hostffn.h"
#include "expertcast/store.h"
#include "expertcast/loader.h"
#include "expertcast/pregate.h"
#include "expertcast/replay.h"

#endif
