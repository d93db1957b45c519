# Reference values hard-coded in src/linear.rs tests (scikit-learn 1.9.1, numpy 2.4.6, scipy).
# The dataset was generated once with numpy (default_rng(7)) and is hard-coded here and in the tests.
import numpy as np, warnings
from sklearn.linear_model import LogisticRegression, Ridge
from scipy.optimize import minimize
np.set_printoptions(precision=12)
X = np.array([[5.0,8.8,1.0],[5.6,5.1,1.0],[4.45,8.47,0.0],[3.22,6.4,1.0],[4.09,7.42,0.0],[3.02,0.91,0.0],[5.12,5.41,0.0],[7.68,5.08,1.0],[4.02,8.71,1.0],[3.76,3.61,1.0],[5.98,5.98,1.0],[5.71,0.59,1.0],[5.21,3.88,0.0],[3.14,3.23,0.0],[4.94,1.5,1.0],[6.39,8.16,0.0],[2.31,3.79,0.0],[4.08,9.79,0.0],[1.2,5.9,1.0],[2.42,6.05,0.0],[1.32,6.38,1.0],[4.53,6.76,1.0],[2.47,1.51,1.0],[5.54,4.4,0.0],[5.31,2.4,1.0],[4.63,4.02,1.0],[-0.03,0.97,0.0],[3.92,9.68,0.0],[4.9,2.15,0.0],[5.23,6.72,1.0],[1.94,3.0,0.0],[4.04,8.74,0.0],[3.04,6.62,1.0],[3.38,1.32,0.0],[7.12,8.45,1.0],[3.38,9.45,0.0],[4.93,9.04,1.0],[6.77,5.7,0.0],[3.83,1.45,0.0],[4.78,1.92,1.0]])
YB = np.array([0,1,0,0,0,0,0,1,0,0,0,1,0,1,0,0,1,0,0,1,0,0,0,0,1,1,0,0,1,0,0,0,1,0,1,0,0,1,0,0])
Y3 = np.array([0,0,0,2,2,1,0,0,0,1,2,1,1,1,2,0,1,2,2,1,2,2,1,1,1,1,1,0,1,0,1,0,2,2,0,2,2,0,1,2])
YR = np.array([2.5,7.13,0.45,1.93,-0.84,4.31,2.67,10.55,-0.21,4.61,6.18,8.77,6.43,3.59,7.75,3.83,0.81,-4.33,-0.67,-1.27,-1.04,2.31,4.23,4.61,9.23,6.06,-0.83,-0.34,5.07,4.08,-1.31,0.64,2.23,4.93,6.59,-2.38,2.38,5.34,4.38,7.69])
W = np.array([2.2,1.4,1.3,1.4,0.3,2.6,1.7,1.3,1.7,2.2,1.3,2.5,2.8,1.3,0.6,2.3,3.0,0.6,2.2,2.5,2.8,0.5,0.5,3.0,0.5,0.7,1.8,1.4,2.3,0.7,2.8,0.8,2.4,0.4,1.5,0.3,1.1,1.1,2.2,1.5])
def std(X):
    m = np.nanmean(X,0); s = np.nanstd(X,0)
    Z = (X-m)/s; Z[np.isnan(Z)] = 0; return Z
def lr(Z, y, C=1.0, sw=None):
    m = LogisticRegression(C=C, tol=1e-12, max_iter=100000).fit(Z, y, sample_weight=sw)
    return m.coef_, m.intercept_
def scipy_binary(Z, y, C=1.0, sw=None):
    sw = np.ones(len(y)) if sw is None else sw
    def f(t):
        w, b = t[:-1], t[-1]; m = Z@w+b
        return C*np.sum(sw*(np.logaddexp(0,m)-y*m)) + 0.5*w@w
    r = minimize(f, np.zeros(Z.shape[1]+1), method="BFGS", options={"gtol":1e-12})
    return r.x
Z = std(X)
for name, args in [("binary C=1", dict()), ("binary C=1 weighted", dict(sw=W)), ("binary C=0.1", dict(C=0.1))]:
    c, b = lr(Z, YB, **args)
    print(name, "coef", repr(c[0].tolist()), "intercept", repr(b[0]))
    print("   scipy", repr(scipy_binary(Z, YB, **args).tolist()))
c, b = lr(Z, Y3)
print("multinomial coef", repr(c.tolist())); print("   intercept", repr(b.tolist()), "centered", repr((b-b.mean()).tolist()))
r = Ridge(alpha=1.0).fit(Z, YR); print("ridge coef", repr(r.coef_.tolist()), "intercept", repr(r.intercept_))
r = Ridge(alpha=1.0).fit(Z, YR, sample_weight=W); print("ridge weighted coef", repr(r.coef_.tolist()), "intercept", repr(r.intercept_))
XN = X.copy(); XN[3,0] = np.nan; XN[10,1] = np.nan; XN[25,0] = np.nan
print("nan mean", repr(np.nanmean(XN,0).tolist()), "std", repr(np.nanstd(XN,0).tolist()))
c, b = lr(std(XN), YB); print("nan binary coef", repr(c[0].tolist()), "intercept", repr(b[0]))
