// The assumptions of the click-log generator, as data. README.md ("The news click log") states them
// in words; a change here is a change to the dataset, so it changes the measured AUCs.

/** Top-level categories, as MIND has 18. */
export const CLICK_CATEGORIES = 18;
/** Subcategories per category: 18 × 15 = 270, about MIND's count. Subcategory s belongs to category ⌊s / 15⌋. */
export const SUBCATEGORIES_PER_CATEGORY = 15;
export const CLICK_SUBCATEGORIES = CLICK_CATEGORIES * SUBCATEGORIES_PER_CATEGORY;

/** Sizes at scale 1; every size grows linearly with the scale (scale 100: 1M users, 200k articles, 10M impressions). */
export const USERS_PER_SCALE = 10_000;
export const ARTICLES_PER_SCALE = 2_000;
export const IMPRESSIONS_PER_SCALE = 100_000;

/** Clicked articles kept per user, most recent last: the model's history bag. */
export const HISTORY_LENGTH = 10;
/** Dense features per impression: hour of day as sin and cos, the article's age, its popularity. */
export const CLICK_DENSE_FEATURES = ['hourSin', 'hourCos', 'articleAge', 'popularity'] as const;

/** The simulated window: impressions arrive at a steady rate over these days. */
export const CLICK_WINDOW_DAYS = 28;
/** The last days of the window are held out for validation: the model is judged on later impressions. */
export const VALID_DAYS = 3;
/** Articles published before the window starts (spread over the 7 days before it): the stock users' first histories come from. */
export const STOCK_SHARE = 0.2;

/** Zipf exponent of article popularity (base weight of the article of popularity rank r is r^−α). */
export const POPULARITY_ALPHA = 1.1;
/** How fast an article stops being shown: its weight is base · (FLOOR + (1 − FLOOR)·2^(−age / half-life)). */
export const FRESHNESS_HALF_LIFE_DAYS = 1;
export const FRESHNESS_FLOOR = 0.02;
/** Spread of user activity: a user's share of impressions ∝ exp(σ·N(0, 1)). */
export const USER_ACTIVITY_SIGMA = 1;

/** Users' tastes over the 18 categories ~ Dirichlet(α, …, α): low α makes specialised readers. */
export const TASTE_CONCENTRATION = 0.4;
/** Subcategories a user is especially fond of (each drawn from the user's taste). */
export const FAVOURITE_SUBCATEGORIES = 3;
/**
 * Share of impressions the site picks for the user (a category from the user's taste, then an article
 * of it by popularity); the rest are trending articles (a category and article by popularity alone).
 */
export const PERSONALISED_SHARE = 0.5;

/**
 * The click model: P(click) = σ(b + Σ wᵢ·xᵢ), with b chosen so the mean click rate is TARGET_CTR.
 * taste: log(18 · taste[category]), floored at TASTE_FLOOR (a user nearly never clicks a category
 * they do not read); favourite: 1 when the article's subcategory is one of the user's favourites;
 * popularity: the popularity feature in [0, 1]; age: the article's age in days, capped at 3;
 * evening: cos(2π(hour − 20)/24), people click more in the evening; user: a per-user bias ~ N(0, σ²).
 */
export const TARGET_CTR = 0.04;
export const CLICK_WEIGHTS = { taste: 1.1, favourite: 1.2, popularity: 1.5, age: -0.4, evening: 0.25 } as const;
export const TASTE_FLOOR = -3;
export const USER_BIAS_SIGMA = 0.5;
