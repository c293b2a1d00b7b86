// The assumptions of the news generator, as data. README.md ("The built-in news dataset") states
// them in words; a change here is a change to the dataset, so it changes the measured accuracies.

/** The 10 categories; a category's id is its index here. */
export const NEWS_CATEGORIES = [
  'politics',
  'business',
  'technology',
  'science',
  'health',
  'sports',
  'entertainment',
  'lifestyle',
  'travel',
  'food',
] as const;

/** Devices, in the order of the device features. */
export const DEVICES = ['mobile', 'desktop', 'tablet'] as const;

/** 2024-01-01T00:00:00Z, a Monday: the start of the simulated window (timestamps are Unix seconds). */
export const WINDOW_START = 1704067200;
/** Length of the simulated window. */
export const WINDOW_DAYS = 28;
/** A gap longer than this between two clicks of a user starts a new session (30 minutes). */
export const SESSION_GAP_SECONDS = 1800;

export const USERS_PER_SCALE = 5000;
export const ARTICLES_PER_SCALE = 3000; // articles = 3000·√scale

/** Site-wide demand for each category: skewed, politics and sports lead. Sums to 1. */
export const CATEGORY_DEMAND = [0.2, 0.12, 0.11, 0.05, 0.07, 0.16, 0.13, 0.07, 0.04, 0.05];
/** Concentration of users' tastes: preference ~ Dirichlet(TASTE_CONCENTRATION · demand). Low = specialised readers. */
export const TASTE_CONCENTRATION = 2;
/** Zipf exponent of article popularity within a category. */
export const ZIPF_EXPONENT = 1.1;

/**
 * Drift: a share of users change taste once, from preference A to an independent preference B,
 * around a random moment of the window (a logistic switch with a time scale of 2 days).
 */
export const DRIFTING_USERS = 0.6;
export const DRIFT_SECONDS = 2 * 86400;

/** Related categories, where readers go next within a session. */
export const RELATED: readonly (readonly number[])[] = [
  [1], // politics → business
  [2, 0], // business → technology, politics
  [3, 1], // technology → science, business
  [4, 2], // science → health, technology
  [9, 3], // health → food, science
  [6], // sports → entertainment
  [7, 5], // entertainment → lifestyle, sports
  [8, 9], // lifestyle → travel, food
  [9, 7], // travel → food, lifestyle
  [4, 8], // food → health, travel
];
/** Within a session, the chance that the next click follows the previous one (else it follows taste). */
export const FOLLOW_PREVIOUS = 0.75;
/** How GO_RELATED divides among one or two related categories: the first is the closer. */
export const RELATED_SPLIT = [[1], [0.75, 0.25]];
/** When following the previous click: stay in its category, go to a related one, or anywhere (by demand). */
export const STAY = 0.2;
export const GO_RELATED = 0.65;
export const GO_ANYWHERE = 0.15;

/** Multipliers of taste by time of day: [from hour, to hour, 10 multipliers]. */
export const HOUR_EFFECT: readonly (readonly [number, number, readonly number[]])[] = [
  [0, 5, [1, 1, 1.3, 1.8, 1, 1, 2.2, 1, 1, 1]], // night: entertainment, science
  [5, 10, [3, 2.4, 1, 1, 1.3, 0.7, 0.5, 0.9, 0.7, 0.7]], // morning: politics, business
  [10, 15, [1, 1.6, 1.8, 1.3, 1.1, 0.8, 0.7, 1.1, 1, 2.2]], // midday: technology, food
  [15, 18, [1, 1.3, 1.4, 1.3, 1, 1.3, 1, 1.2, 1.2, 1.3]], // afternoon: mild
  [18, 24, [0.7, 0.6, 0.8, 0.8, 1, 2.5, 2.8, 1.4, 1.4, 1.1]], // evening: sports, entertainment
];
/** Multipliers of taste by device (order of DEVICES). */
export const DEVICE_EFFECT: readonly (readonly number[])[] = [
  [1, 0.7, 0.8, 0.7, 1, 1.9, 1.7, 1.1, 0.9, 0.9], // mobile: sports, entertainment
  [1.3, 2, 2, 1.6, 1, 0.7, 0.6, 0.7, 0.8, 0.7], // desktop: business, technology
  [0.7, 0.7, 0.8, 1, 1.3, 0.8, 1.1, 2, 2.3, 2.3], // tablet: lifestyle, travel, food
];
/** Share of users whose main device is mobile, desktop, tablet; and of sessions on another device. */
export const DEVICE_SHARE = [0.55, 0.3, 0.15];
export const OTHER_DEVICE = 0.2;
/** Users read at a habitual hour: morning, lunch or evening peak (hours) with these shares; spread ±2 h. */
export const PEAK_HOURS = [7.5, 12.5, 20.5];
export const PEAK_SHARE = [0.3, 0.2, 0.5];
export const PEAK_SPREAD_HOURS = 2;

/** Sessions per user: 1 + Poisson(λ), λ ~ Gamma(1.5)·3.5 (heavy-tailed activity, mean ≈ 6.3). */
export const ACTIVITY_SHAPE = 1.5;
export const ACTIVITY_SCALE = 3.5;
export const MAX_SESSIONS = 200;
/** Clicks per session: 1 + Geometric, continuing with this probability (mean ≈ 2.9). */
export const CONTINUE_SESSION = 0.7;
/** Dwell: lognormal, median 25 s · (0.5 + 6·taste for the category) · device factor, σ = 0.5; 1 s to 30 min. */
export const DWELL_MEDIAN_SECONDS = 25;
export const DWELL_DEVICE_FACTOR = [0.8, 1.2, 1.1];
export const DWELL_SIGMA = 0.5;

/** Defects of the log. */
export const MISSING_DWELL = 0.05;
export const MISSING_DEVICE = 0.03;
export const DUPLICATED_EVENT = 0.02;
